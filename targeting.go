package mds

import (
	"math"
	"time"
)

// Stage is how widely a live task delivers.
type Stage string

const (
	// StageGray delivers only to devices a gray gate admits: a whitelist,
	// a sticky percentage or a capped time window.
	StageGray Stage = "gray"
	// StageOfficial delivers to every device the rules and package admit.
	StageOfficial Stage = "official"
)

// Targeting says which devices a task reaches. Rules narrow the audience
// and are ANDed; in the gray stage, a device must also pass at least one
// gray gate (whitelists, rollout percentage, capped window), which are ORed.
// The official stage ignores the gates and keeps the rules.
type Targeting struct {
	Rules      []Rule   `json:"rules,omitempty"`
	RuleSets   []int64  `json:"rule_sets,omitempty"`  // IDs of saved rule sets, ANDed like inline rules
	Whitelists []int64  `json:"whitelists,omitempty"` // IDs of whitelists; a listed user or device passes
	Rollout    *Rollout `json:"rollout,omitempty"`
	Window     *Window  `json:"window,omitempty"`
	// Salt seeds the sticky percentage. The server sets it once per task,
	// so that two tasks at 10% reach different devices and a task's rollout
	// never reshuffles; what a caller sends here is ignored.
	Salt string `json:"salt,omitempty" readOnly:"true"`
}

// Rollout is a sticky percentage, fixed or following a ramp.
type Rollout struct {
	// Percent of devices (or users) admitted, 0 to 100 in steps of 0.01.
	Percent float64 `json:"percent,omitempty"`
	// Ramp, if set, sets the percentage over time instead of Percent: the
	// percentage of the last step whose time has come; 0 before the first.
	Ramp []RampStep `json:"ramp,omitempty"`
	// Stickiness is what the hash keeps stable: "device" (default) or
	// "user", so that one user gets the same answer on all their devices.
	Stickiness Stickiness `json:"stickiness,omitempty"`
}

// RampStep raises (or lowers) the rollout percentage at a time.
type RampStep struct {
	At      time.Time `json:"at"`
	Percent float64   `json:"percent"`
}

// Stickiness names the identifier a rollout or cap counts by.
type Stickiness string

const (
	StickyDevice Stickiness = "device"
	StickyUser   Stickiness = "user"
)

// Window admits the first Cap distinct devices that check and match
// between Start and End; an admitted device stays admitted for the task's
// life.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Cap   int       `json:"cap"`
}

// Limits of a targeting.
const (
	MaxRampStep = 100
	MaxCap      = 1_000_000
	MaxRules    = 64
	MaxRuleRefs = 32
)

// basisPoints converts a percentage to hundredths of a percent, the unit
// the engine works in.
func basisPoints(p float64) int { return int(math.Round(p * 100)) }

func validPercent(p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return Errorf(EINVALID, "percent %v must be between 0 and 100", p)
	}
	if math.Abs(p*100-math.Round(p*100)) > 1e-6 {
		return Errorf(EINVALID, "percent %v has more than two decimals; the finest step is 0.01", p)
	}
	return nil
}

// HasGates reports whether any gray gate is configured.
func (t *Targeting) HasGates() bool {
	return len(t.Whitelists) > 0 || t.Rollout != nil || t.Window != nil
}

// HasRules reports whether the targeting narrows its audience with rules,
// inline or saved.
func (t *Targeting) HasRules() bool {
	return len(t.Rules) > 0 || len(t.RuleSets) > 0
}

// Validate checks a targeting as a caller describes it. References to rule
// sets and whitelists are checked by the store, which knows what exists.
func (t *Targeting) Validate() error {
	if len(t.Rules) > MaxRules {
		return Errorf(EINVALID, "%d rules; at most %d", len(t.Rules), MaxRules)
	}
	for i := range t.Rules {
		if err := t.Rules[i].Validate(); err != nil {
			return Errorf(EINVALID, "rule %d: %s", i+1, ErrorMessage(err))
		}
	}
	if len(t.RuleSets) > MaxRuleRefs || len(t.Whitelists) > MaxRuleRefs {
		return Errorf(EINVALID, "a task refers to at most %d rule sets and %d whitelists", MaxRuleRefs, MaxRuleRefs)
	}
	if r := t.Rollout; r != nil {
		if err := validPercent(r.Percent); err != nil {
			return err
		}
		if r.Percent != 0 && len(r.Ramp) > 0 {
			return Errorf(EINVALID, "give a rollout percentage or a ramp, not both: a ramp sets the percentage over time")
		}
		switch r.Stickiness {
		case "":
			r.Stickiness = StickyDevice
		case StickyDevice, StickyUser:
		default:
			return Errorf(EINVALID, "stickiness %q is not one of device, user", r.Stickiness)
		}
		if len(r.Ramp) > MaxRampStep {
			return Errorf(EINVALID, "a ramp has at most %d steps", MaxRampStep)
		}
		for i, s := range r.Ramp {
			if err := validPercent(s.Percent); err != nil {
				return Errorf(EINVALID, "ramp step %d: %s", i+1, ErrorMessage(err))
			}
			if s.At.IsZero() {
				return Errorf(EINVALID, "ramp step %d has no time", i+1)
			}
			if i > 0 && !s.At.After(r.Ramp[i-1].At) {
				return Errorf(EINVALID, "ramp step %d (%s) must come after step %d", i+1, s.At.Format(time.RFC3339), i)
			}
		}
	}
	if w := t.Window; w != nil {
		if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
			return Errorf(EINVALID, "a capped window needs a start and an end after it")
		}
		if w.Cap < 1 || w.Cap > MaxCap {
			return Errorf(EINVALID, "window cap %d must be between 1 and %d devices", w.Cap, MaxCap)
		}
	}
	return nil
}

// BasisPointsAt returns the rollout percentage in basis points at now: the
// fixed percentage, or that of the ramp's step that has come last.
func (r *Rollout) BasisPointsAt(now time.Time) int {
	if len(r.Ramp) == 0 {
		return basisPoints(r.Percent)
	}
	bp := 0
	for _, s := range r.Ramp {
		if now.Before(s.At) {
			break
		}
		bp = basisPoints(s.Percent)
	}
	return bp
}
