package mds

import (
	"strconv"
	"time"
)

// Status is where a task is in its lifecycle.
type Status string

const (
	StatusDraft   Status = "draft"   // created, not yet delivered to anyone
	StatusLive    Status = "live"    // delivered to the devices it targets
	StatusPaused  Status = "paused"  // delivered to no one until resumed
	StatusStopped Status = "stopped" // finished for good
	// StatusRolledBack is a hotpatch withdrawn from the devices that
	// applied it: they are told to roll back, until a new release.
	StatusRolledBack Status = "rolled_back"
)

// Finished reports whether s is for good: stopped or rolled back. A
// finished task holds on to no rule set or whitelist and takes no edit.
func (s Status) Finished() bool { return s == StatusStopped || s == StatusRolledBack }

// Delivered reports whether a snapshot holds tasks of status s: live ones,
// and rolled-back ones, whose devices are told to roll back.
func (s Status) Delivered() bool { return s == StatusLive || s == StatusRolledBack }

// Action is a lifecycle command an operator gives a task.
type Action string

const (
	ActionRelease Action = "release" // draft → live, in the task's stage
	ActionPromote Action = "promote" // gray → official: from the gray audience to everyone the rules admit
	ActionPause   Action = "pause"   // live → paused
	ActionResume  Action = "resume"  // paused → live
	ActionStop    Action = "stop"    // draft, live or paused → stopped
	// ActionRollback withdraws a released hotpatch: live, paused or
	// stopped → rolled back.
	ActionRollback Action = "rollback"
)

// Actions lists the lifecycle commands in the order people meet them.
var Actions = []Action{ActionRelease, ActionPromote, ActionPause, ActionResume, ActionStop, ActionRollback}

// Task is a release task: it delivers one artifact of its kind to the
// devices its targeting admits, through a lifecycle. What every kind shares
// (lifecycle, stage, targeting, history) is here; Policy holds what is
// particular to the kind.
type Task struct {
	ID         int64
	AppID      int64
	Kind       Kind
	ArtifactID int64 // what the task delivers
	Policy     TaskPolicy
	Status     Status
	Stage      Stage
	Targeting  Targeting
	CreatedAt  time.Time
	UpdatedAt  time.Time
	CreatedBy  string
}

// Validate checks the fields a caller provides and fills defaults. A new
// task is a draft, or live when it is released as it is created.
func (t *Task) Validate() error {
	if err := t.Kind.Validate(); err != nil {
		return err
	}
	if t.Policy == nil || t.Policy.Kind() != t.Kind {
		return Errorf(EINVALID, "a %s task needs a %s policy", t.Kind, t.Kind)
	}
	if err := t.Policy.Validate(); err != nil {
		return err
	}
	if t.ArtifactID <= 0 {
		return Errorf(EINVALID, "a task needs the package_id of the package it delivers")
	}
	switch t.Status {
	case "":
		t.Status = StatusDraft
	case StatusDraft, StatusLive:
	default:
		return Errorf(EINVALID, "a new task is a draft, or live when released at once; not %s", t.Status)
	}
	return t.SetTargeting(t.Targeting)
}

// UpgradePolicy returns the policy of an upgrade task, nil for other kinds.
func (t *Task) UpgradePolicy() *UpgradePolicy {
	p, _ := t.Policy.(*UpgradePolicy)
	return p
}

// SetTargeting validates tg and makes it the task's targeting. A task
// without a stage takes gray when tg has a gray gate and official
// otherwise; a gray task must keep at least one gate, and an official task
// has none: it already reaches every device its rules admit, so a gate
// would be a promise the task does not keep.
func (t *Task) SetTargeting(tg Targeting) error {
	if err := tg.Validate(); err != nil {
		return err
	}
	if t.Kind == KindConfig && !tg.HasGates() && !tg.HasRules() {
		return Errorf(EINVALID, "a configuration task for every device would hide a change from the namespace's history: "+
			"make a new version instead (mds config set), or give the task a gray gate or rules")
	}
	if t.Stage == StageOfficial && tg.HasGates() {
		return Errorf(EINVALID, "task %d is official: it reaches every device its rules admit, so it takes no gray gate "+
			"(whitelists, percentage, ramp or window); narrow it with rules, or release a new gray task", t.ID)
	}
	if t.Stage == "" {
		t.Stage = StageOfficial
		if tg.HasGates() {
			t.Stage = StageGray
		}
	}
	switch t.Stage {
	case StageOfficial:
	case StageGray:
		if !tg.HasGates() {
			return Errorf(EINVALID, "a gray task needs a gray gate: whitelists, a rollout percentage or a capped window; promote it to reach everyone")
		}
	default:
		return Errorf(EINVALID, "stage %q is not one of gray, official", t.Stage)
	}
	// The salt is the task's: once set it never changes, or raising the
	// percentage would reshuffle who is in. A new task may bring one.
	if t.Targeting.Salt != "" {
		tg.Salt = t.Targeting.Salt
	}
	if tg.Salt == "" && t.Kind == KindConfig {
		tg.Salt = ConfigCohort(t.AppID)
	}
	if tg.Salt == "" {
		tg.Salt = randomToken(10)
	}
	t.Targeting = tg
	return nil
}

// ConfigCohort is the rollout salt every configuration task of app
// shares: a device falls in one bucket for all of them, so the changes a
// percentage admits it to are those whose percentage is above its bucket.
// A canary cohort gets every change first, raising a percentage admits
// devices in one order for all changes, and k changes put devices in at
// most k+1 combinations (before whitelists, windows and rules), where
// independent salts would make up to 2^k: a device's configuration, and
// its signed answer, is kept per combination.
func ConfigCohort(app int64) string { return "config-" + strconv.FormatInt(app, 10) }

// Apply carries out action a on t, or returns a conflict error naming the
// state that forbids it.
func (t *Task) Apply(a Action) error {
	switch a {
	case ActionRelease:
		if t.Status == StatusDraft {
			t.Status = StatusLive
			return nil
		}
	case ActionPromote:
		if t.Kind == KindConfig && t.Stage == StageGray && !t.Targeting.HasRules() && t.Status != StatusLive {
			return Errorf(ECONFLICT, "task %d is %s: promoting it would make its change the namespace's next version for every device; "+
				"release or resume it first", t.ID, t.Status)
		}
		if t.Stage == StageGray && !t.Status.Finished() {
			// The gates are dropped, not kept unused: what the task shows
			// is what is in force.
			t.Stage = StageOfficial
			t.Targeting.Whitelists, t.Targeting.Rollout, t.Targeting.Window = nil, nil, nil
			if t.Kind == KindConfig && !t.Targeting.HasRules() {
				// A change for every device is the namespace's next
				// version: the store makes it one as it stops the task,
				// so that history holds what everyone got.
				t.Status = StatusStopped
			}
			return nil
		}
		if t.Stage == StageOfficial {
			return Errorf(ECONFLICT, "task %d is already official", t.ID)
		}
	case ActionPause:
		if t.Status == StatusLive {
			t.Status = StatusPaused
			return nil
		}
	case ActionResume:
		if t.Status == StatusPaused {
			t.Status = StatusLive
			return nil
		}
	case ActionStop:
		if !t.Status.Finished() {
			t.Status = StatusStopped
			return nil
		}
	case ActionRollback:
		if t.Kind != KindHotpatch {
			return Errorf(EINVALID, "task %d delivers %s; only hotpatches roll back (stop the task instead)", t.ID, t.Kind)
		}
		if t.Status == StatusDraft {
			return Errorf(ECONFLICT, "task %d is a draft: no device has its patch; delete or stop it instead", t.ID)
		}
		if t.Status != StatusRolledBack {
			t.Status = StatusRolledBack
			return nil
		}
	default:
		return Errorf(EINVALID, "action %q is not one of release, promote, pause, resume, stop, rollback", a)
	}
	return Errorf(ECONFLICT, "task %d is %s; it cannot %s", t.ID, t.Status, a)
}

// TaskEvent is one entry in a task's history.
type TaskEvent struct {
	ID     int64     `json:"id"`
	TaskID int64     `json:"task_id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`  // the token name that acted
	Action string    `json:"action"` // "created", "targeting" or an Action
	Status Status    `json:"status"` // the status after the event
	Stage  Stage     `json:"stage"`  // the stage after the event
}
