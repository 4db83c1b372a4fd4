package gray

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mds-dev/mds"
)

// Admitter keeps the admissions of capped windows. It is the one stateful
// piece of a decision, so it is an interface: the release package backs it
// with memory in front of the store; tests back it with a map.
type Admitter interface {
	// Admit admits key to task's window w at time now unless w.Cap
	// devices already are; it reports whether key is admitted, now or
	// before.
	Admit(task int64, w *mds.Window, key string, now time.Time) bool
	// Admitted reports, changing nothing, whether key is admitted to
	// task's window w and how many keys are, as of now.
	Admitted(task int64, w *mds.Window, key string, now time.Time) (bool, int)
}

// Targeting is a task's compiled mds.Targeting.
type Targeting struct {
	task    int64
	stage   mds.Stage
	rules   []ruleRef
	lists   []*List
	rollout *mds.Rollout
	window  *mds.Window
	salt    string
}

type ruleRef struct {
	*Rule
	from string // "" for the task's own rules, else the rule set's name
}

// Catalog holds what the tasks of one app refer to, and shares compiled
// rules between them: tasks with the same rule (typically from the same
// rule set) hold one *Rule, which a check evaluates once however many tasks
// carry it.
type Catalog struct {
	ruleSets map[int64]*mds.RuleSet
	lists    map[int64]*List
	shared   map[string]*Rule
}

// memoSize is how many distinct rules of an app a check remembers results
// of; rules past it are evaluated each time they are met.
const memoSize = 64

// NewCatalog returns a catalog over an app's rule sets and compiled lists.
func NewCatalog(ruleSets map[int64]*mds.RuleSet, lists map[int64]*List) *Catalog {
	return &Catalog{ruleSets: ruleSets, lists: lists, shared: map[string]*Rule{}}
}

func (c *Catalog) rule(src mds.Rule) (*Rule, error) {
	key, err := json.Marshal(src)
	if err != nil {
		return nil, err
	}
	if r, ok := c.shared[string(key)]; ok {
		return r, nil
	}
	r, err := CompileRule(src)
	if err != nil {
		return nil, err
	}
	if len(c.shared) < memoSize {
		r.memo, r.catalog = int8(len(c.shared)), c
	}
	c.shared[string(key)] = r
	return r, nil
}

// Compile prepares t's targeting. A rule set or whitelist t names that the
// catalog lacks is an error, so a task never silently targets more widely
// than it says.
func (c *Catalog) Compile(t *mds.Task) (*Targeting, error) {
	tg := &t.Targeting
	out := &Targeting{task: t.ID, stage: t.Stage, rollout: tg.Rollout, window: tg.Window, salt: tg.Salt}
	for _, src := range tg.Rules {
		r, err := c.rule(src)
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", t.ID, err)
		}
		out.rules = append(out.rules, ruleRef{Rule: r})
	}
	for _, id := range tg.RuleSets {
		rs, ok := c.ruleSets[id]
		if !ok || rs.AppID != t.AppID {
			return nil, fmt.Errorf("task %d: rule set %d not found", t.ID, id)
		}
		for _, src := range rs.Rules {
			r, err := c.rule(src)
			if err != nil {
				return nil, fmt.Errorf("task %d: rule set %q: %w", t.ID, rs.Name, err)
			}
			out.rules = append(out.rules, ruleRef{Rule: r, from: rs.Name})
		}
	}
	for _, id := range tg.Whitelists {
		l, ok := c.lists[id]
		if !ok {
			return nil, fmt.Errorf("task %d: whitelist %d not loaded", t.ID, id)
		}
		out.lists = append(out.lists, l)
	}
	return out, nil
}

// stickyKey is the identifier a rollout or window counts by.
func stickyKey(s mds.Stickiness, d *mds.Device) string {
	if s == mds.StickyUser {
		return d.UserID
	}
	return d.DeviceID
}

// Decide reports whether the input is targeted. Rules come first and are
// cheap; in the gray stage the gates follow from cheapest to dearest, so a
// window admission (a write) is spent only on a device nothing else admits.
func (t *Targeting) Decide(in *Input, adm Admitter) bool {
	for _, r := range t.rules {
		if !r.Match(in) {
			return false
		}
	}
	if t.stage == mds.StageOfficial {
		return true
	}
	d := in.Device
	for _, l := range t.lists {
		if id, h := in.idHash(l.Kind); l.Contains(id, h) {
			return true
		}
	}
	if r := t.rollout; r != nil {
		if key := stickyKey(r.Stickiness, d); key != "" && Bucket(t.salt, key) < r.BasisPointsAt(in.Now) {
			return true
		}
	}
	if w := t.window; w != nil && d.DeviceID != "" {
		switch {
		case in.Now.Before(w.Start):
			return false
		case in.Now.Before(w.End):
			return adm.Admit(t.task, w, d.DeviceID, in.Now)
		}
		admitted, _ := adm.Admitted(t.task, w, d.DeviceID, in.Now)
		return admitted
	}
	return false
}

// Step is one finding of an explanation.
type Step struct {
	What   string `json:"what"`   // "rule", "whitelist", "rollout", "window", "stage"
	Detail string `json:"detail"` // what was checked, in words
	Passed bool   `json:"passed"`
}

// Explain decides like Decide but admits no one, and says what decided.
// The last step is the deciding one.
func (t *Targeting) Explain(in *Input, adm Admitter) (bool, []Step) {
	var steps []Step
	for _, r := range t.rules {
		ok := r.Match(in)
		detail := r.String()
		if r.from != "" {
			detail += " (rule set " + r.from + ")"
		}
		if v, present := r.value(in); present {
			detail += fmt.Sprintf("; device has %q", v)
		} else {
			detail += "; device did not report it"
		}
		steps = append(steps, Step{What: "rule", Detail: detail, Passed: ok})
		if !ok {
			return false, steps
		}
	}
	if t.stage == mds.StageOfficial {
		return true, append(steps, Step{What: "stage", Detail: "official release: every device the rules admit", Passed: true})
	}
	d := in.Device
	var gates []string
	for _, l := range t.lists {
		id, h := in.idHash(l.Kind)
		if l.Contains(id, h) {
			return true, append(steps, Step{What: "whitelist", Passed: true,
				Detail: fmt.Sprintf("%s %q is in whitelist %q", l.Kind, id, l.Name)})
		}
		gates = append(gates, fmt.Sprintf("%s %q is not in whitelist %q", l.Kind, id, l.Name))
	}
	if r := t.rollout; r != nil {
		key := stickyKey(r.Stickiness, d)
		bp := r.BasisPointsAt(in.Now)
		if key == "" {
			gates = append(gates, fmt.Sprintf("rollout %s counts by %s id, which the device did not send", pct(bp), r.Stickiness))
		} else {
			b := Bucket(t.salt, key)
			detail := fmt.Sprintf("%s %q falls in bucket %d of 10000; rollout admits buckets below %d (%s)", r.Stickiness, key, b, bp, pct(bp))
			if b < bp {
				return true, append(steps, Step{What: "rollout", Detail: detail, Passed: true})
			}
			gates = append(gates, detail)
		}
	}
	if w := t.window; w != nil {
		admitted, n := adm.Admitted(t.task, w, d.DeviceID, in.Now)
		var detail string
		ok := false
		switch {
		case admitted:
			detail, ok = fmt.Sprintf("device %q was admitted to the window (%d of %d admitted)", d.DeviceID, n, w.Cap), true
		case in.Now.Before(w.Start):
			detail = fmt.Sprintf("window opens at %s", w.Start.Format(time.RFC3339))
		case !in.Now.Before(w.End):
			detail = fmt.Sprintf("window closed at %s with %d of %d admitted; device %q was not among them", w.End.Format(time.RFC3339), n, w.Cap, d.DeviceID)
		case n >= w.Cap:
			detail = fmt.Sprintf("window is full: %d of %d devices admitted", n, w.Cap)
		default:
			detail, ok = fmt.Sprintf("window is open with %d of %d admitted: a check now would admit device %q", n, w.Cap, d.DeviceID), true
		}
		if ok {
			return true, append(steps, Step{What: "window", Detail: detail, Passed: true})
		}
		gates = append(gates, detail)
	}
	return false, append(steps, Step{What: "gray", Detail: "no gray gate admits the device: " + strings.Join(gates, "; "), Passed: false})
}

func pct(bp int) string { return fmt.Sprintf("%d.%02d%%", bp/100, bp%100) }

// Matches reports how a set of rules alone judges the input; the audience
// preview counts with it.
func Matches(rules []*Rule, in *Input) bool {
	for _, r := range rules {
		if !r.Match(in) {
			return false
		}
	}
	return true
}
