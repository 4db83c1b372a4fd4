package gray

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mds-dev/mds"
)

// Admitter keeps the admissions of capped windows. It is the one stateful
// piece of a decision, so it is an interface: the delivery package backs
// it with memory in front of the store; tests back it with a map. A key's
// memory may be reused once a call returns (the check path decodes into
// buffers it recycles): what keeps a key keeps a copy.
type Admitter interface {
	// Admit admits key to task's window w at time now unless w.Cap
	// devices already are; it reports whether key is admitted, now or
	// before.
	Admit(task int64, w *mds.Window, key string, now time.Time) bool
	// Admitted reports, changing nothing, whether key is admitted to
	// task's window w and how many keys are, as of now.
	Admitted(task int64, w *mds.Window, key string, now time.Time) (bool, int)
}

// Audience is a task's compiled mds.Targeting: it decides whether a device
// is in the task's audience.
type Audience struct {
	task    int64
	stage   mds.Stage
	rules   []ruleRef
	lists   []*List
	rollout *mds.Rollout
	// bp is the rollout's basis points when it has no ramp, worked out
	// once; -1 when they move with time.
	bp     int
	window *mds.Window
	salt   string
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
	// Keyed by the normalised rule, so that rules written differently but
	// meaning the same (" x" and "x", CIDR and IN_CIDR) share one.
	norm := src
	if err := norm.Validate(); err != nil {
		return nil, err
	}
	key, err := json.Marshal(norm)
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
func (c *Catalog) Compile(t *mds.Task) (*Audience, error) {
	tg := &t.Targeting
	out := &Audience{task: t.ID, stage: t.Stage, rollout: tg.Rollout, bp: -1, window: tg.Window, salt: tg.Salt}
	if r := tg.Rollout; r != nil && len(r.Ramp) == 0 {
		out.bp = r.BasisPointsAt(time.Time{})
	}
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
		if !ok || l.AppID != t.AppID {
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
func (t *Audience) Decide(in *Input, adm Admitter) bool { return t.decide(in, adm, nil) }

// Everyone reports whether the audience admits every device (an official
// release without rules), so that a caller may skip Decide.
func (t *Audience) Everyone() bool { return t.stage == mds.StageOfficial && len(t.rules) == 0 }

// Step is one finding of an explanation.
type Step struct {
	What   string `json:"what"`   // "rule", "whitelist", "rollout", "window", "stage", "gray"
	Detail string `json:"detail"` // what was checked, in words
	Passed bool   `json:"passed"`
}

// Explain decides as Decide does, by the same code, but admits no one, and
// says what decided. The last step is the deciding one.
func (t *Audience) Explain(in *Input, adm Admitter) (bool, []Step) {
	ex := &explainer{}
	ok := t.decide(in, adm, ex)
	if !ok && len(ex.gates) > 0 {
		ex.steps = append(ex.steps, Step{What: "gray", Detail: "no gray gate admits the device: " + strings.Join(ex.gates, "; ")})
	}
	return ok, ex.steps
}

// explainer collects what decide found; decide is given none on the check
// path, so explaining costs a check nothing.
type explainer struct {
	steps []Step
	gates []string // gates that did not admit, for the final step
}

func (ex *explainer) pass(what, format string, args ...any) {
	ex.steps = append(ex.steps, Step{What: what, Detail: fmt.Sprintf(format, args...), Passed: true})
}

func (ex *explainer) miss(format string, args ...any) {
	ex.gates = append(ex.gates, fmt.Sprintf(format, args...))
}

// decide is Decide and Explain in one, so they cannot drift apart: with an
// explainer it records each finding and, instead of admitting a device to
// a window, says whether a check now would.
func (t *Audience) decide(in *Input, adm Admitter, ex *explainer) bool {
	for _, r := range t.rules {
		ok := r.Match(in)
		if ex != nil {
			ex.steps = append(ex.steps, Step{What: "rule", Detail: r.describe(in), Passed: ok})
		}
		if !ok {
			return false
		}
	}
	if t.stage == mds.StageOfficial {
		if ex != nil {
			ex.pass("stage", "official release: every device the rules admit")
		}
		return true
	}
	d := in.Device
	for _, l := range t.lists {
		id, hit := in.listed(l)
		if hit {
			if ex != nil {
				ex.pass("whitelist", "%s %q is in whitelist %q", l.Kind, id, l.Name)
			}
			return true
		}
		if ex != nil {
			ex.miss("%s %q is not in whitelist %q", l.Kind, id, l.Name)
		}
	}
	if r := t.rollout; r != nil {
		key := stickyKey(r.Stickiness, d)
		bp := t.bp
		if bp < 0 {
			bp = r.BasisPointsAt(in.Now)
		}
		if key != "" {
			b := in.bucket(t.salt, key)
			if b < bp {
				if ex != nil {
					ex.pass("rollout", "%s %q falls in bucket %d of %d; rollout admits buckets below %d (%s)", r.Stickiness, key, b, Buckets, bp, pct(bp))
				}
				return true
			}
			if ex != nil {
				ex.miss("%s %q falls in bucket %d of %d; rollout admits buckets below %d (%s)", r.Stickiness, key, b, Buckets, bp, pct(bp))
			}
		} else if ex != nil {
			ex.miss("rollout %s counts by %s id, which the device did not send", pct(bp), r.Stickiness)
		}
	}
	if w := t.window; w != nil && d.DeviceID != "" {
		open := !in.Now.Before(w.Start) && in.Now.Before(w.End)
		if open && ex == nil {
			return adm.Admit(t.task, w, d.DeviceID, in.Now)
		}
		// Outside the window (or explaining), only an earlier admission
		// counts: a device admitted stays admitted for the task's life,
		// even if the window is later moved.
		admitted, n := adm.Admitted(t.task, w, d.DeviceID, in.Now)
		switch {
		case admitted:
			if ex != nil {
				ex.pass("window", "device %q was admitted to the window (%d of %d admitted)", d.DeviceID, n, w.Cap)
			}
			return true
		case ex == nil:
			return false
		case open && n < w.Cap:
			ex.pass("window", "window is open with %d of %d admitted: a check now would admit device %q", n, w.Cap, d.DeviceID)
			return true
		case open:
			ex.miss("window is full: %d of %d devices admitted", n, w.Cap)
		case in.Now.Before(w.Start):
			ex.miss("window opens at %s", w.Start.Format(time.RFC3339))
		default:
			ex.miss("window closed at %s with %d of %d admitted; device %q was not among them", w.End.Format(time.RFC3339), n, w.Cap, d.DeviceID)
		}
	} else if w != nil && ex != nil {
		ex.miss("the window counts devices, and the device sent no device_id")
	}
	return false
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

// describe says what the rule checked and what the device had, for Explain.
func (r ruleRef) describe(in *Input) string {
	detail := r.String()
	if r.from != "" {
		detail += " (rule set " + r.from + ")"
	}
	if v, present := r.value(in); present {
		return detail + fmt.Sprintf("; device has %q", v)
	}
	return detail + "; device did not report it"
}
