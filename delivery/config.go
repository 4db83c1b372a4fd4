package delivery

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// The configuration selector. Every device of an app gets each of its
// namespaces' current version, overlaid by the app's live configuration
// changes whose audience admits it; how the overlay works is package
// config's (Effective). So a device's configuration is a function of the
// app's part and of which changes admit it: a set of at most
// mds.MaxLiveConfigChanges, kept as the bits of a word, which the
// transport keeps what it derives from.

// Config is an app's configuration as the snapshot holds it: its
// namespaces, by name, and its live changes, by task ID, change i being
// bit i of a device's admitted set.
type Config struct {
	App        *mds.App
	Namespaces []ConfigNamespace
	Changes    []*ConfigChange
	// Memo is the transport's, as Offer.Memo is, for what it derives
	// from the app's configuration (sections and documents).
	Memo atomic.Value
}

// ConfigNamespace is one namespace of an app: its current version (nil
// for one only live changes name), and the set of changes of it.
type ConfigNamespace struct {
	Name    string
	Version *mds.ConfigVersion
	Changes uint64
}

// Number is the number of the namespace's current version, 0 for none.
func (n *ConfigNamespace) Number() int64 {
	if n.Version == nil {
		return 0
	}
	return n.Version.Number
}

// ConfigChange is a live configuration task with what it changes.
type ConfigChange struct {
	*Offer
	Spec *mds.ConfigSpec
}

// ConfigChoice is what a device gets of configuration: its app's, and
// the set of the app's changes that admit it (bit i: Config.Changes[i]).
type ConfigChoice struct {
	Config   *Config // nil for an app without configuration
	Admitted uint64
}

// configs is the selector's state of one app while it compiles.
type configs struct {
	c        *Config
	versions []*mds.ConfigVersion
}

// version adds the current version of a namespace.
func (cs *configs) version(v *mds.ConfigVersion) { cs.versions = append(cs.versions, v) }

func (cs *configs) add(o *Offer) error {
	spec, ok := o.Artifact.Spec.(*mds.ConfigSpec)
	if !ok {
		return fmt.Errorf("package %d is not a configuration change", o.Artifact.ID)
	}
	if cs.c == nil {
		cs.c = &Config{App: o.App}
	}
	if len(cs.c.Changes) == mds.MaxLiveConfigChanges {
		return fmt.Errorf("the app has %d configuration changes live already, the most a snapshot holds", mds.MaxLiveConfigChanges)
	}
	cs.c.Changes = append(cs.c.Changes, &ConfigChange{Offer: o, Spec: spec})
	return nil
}

// finish orders the changes by task, the newest last, and names each
// namespace with the changes of it.
func (cs *configs) finish(app *mds.App) {
	if cs.c == nil && len(cs.versions) == 0 {
		return
	}
	if cs.c == nil {
		cs.c = &Config{App: app}
	}
	c := cs.c
	slices.SortFunc(c.Changes, func(a, b *ConfigChange) int { return cmp.Compare(a.Task.ID, b.Task.ID) })
	byName := map[string]*ConfigNamespace{}
	ns := func(name string) *ConfigNamespace {
		if n := byName[name]; n != nil {
			return n
		}
		n := &ConfigNamespace{Name: name}
		byName[name] = n
		return n
	}
	for _, v := range cs.versions {
		ns(v.Namespace).Version = v
	}
	for i, ch := range c.Changes {
		ns(ch.Spec.Namespace).Changes |= 1 << i
	}
	for _, n := range byName {
		c.Namespaces = append(c.Namespaces, *n)
	}
	slices.SortFunc(c.Namespaces, func(a, b ConfigNamespace) int { return cmp.Compare(a.Name, b.Name) })
	cs.versions = nil
}

// decide asks every live change; the changes share the app's cohort, so
// the check works out the device's bucket once (gray.Input).
func (cs *configs) decide(in *gray.Input, adm gray.Admitter) ConfigChoice {
	if cs.c == nil {
		return ConfigChoice{}
	}
	ch := ConfigChoice{Config: cs.c}
	for i, o := range cs.c.Changes {
		if o.audience.Decide(in, adm) {
			ch.Admitted |= 1 << i
		}
	}
	return ch
}

// explain explains every live change, admitting no one: every change
// that matches is in force for the device (unless a capped window fills
// before it checks).
func (cs *configs) explain(in *gray.Input, adm gray.Admitter) []Explanation {
	if cs.c == nil {
		return nil
	}
	var out []Explanation
	for _, o := range cs.c.Changes {
		e := o.explanation()
		var steps []gray.Step
		e.Matched, steps = o.audience.Explain(in, adm)
		e.Steps = append([]gray.Step{{What: "config", Detail: fmt.Sprintf("changes %s in namespace %s", keyCount(o.Spec), o.Spec.Namespace), Passed: true}}, steps...)
		e.Chosen = e.Matched
		out = append(out, e)
	}
	return out
}

// keyCount says how many keys a change touches, for people.
func keyCount(p *mds.ConfigSpec) string {
	if n := len(p.Set) + len(p.Delete); n != 1 {
		return fmt.Sprintf("%d keys", n)
	}
	return "1 key"
}

// Of returns the changes of set that change namespace n, newest last.
func (c *Config) Of(n *ConfigNamespace, set uint64) []*ConfigChange {
	return c.In(set & n.Changes)
}

// In returns the changes of set, newest last.
func (c *Config) In(set uint64) []*ConfigChange {
	out := make([]*ConfigChange, 0, bits.OnesCount64(set))
	for set != 0 {
		i := bits.TrailingZeros64(set)
		out = append(out, c.Changes[i])
		set &^= 1 << i
	}
	return out
}
