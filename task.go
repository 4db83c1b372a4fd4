package mds

import (
	"time"
)

// Kind is what a release task delivers. Every kind goes through the same
// task lifecycle and targeting; only the payload differs.
type Kind string

const (
	KindUpgrade Kind = "upgrade" // a new native app version
)

// UpgradeMode is how insistently a device asks its user to upgrade.
type UpgradeMode string

const (
	// ModeSingle reminds once per RemindInterval.
	ModeSingle UpgradeMode = "single"
	// ModeMultiple reminds at every check.
	ModeMultiple UpgradeMode = "multiple"
	// ModeForce blocks the app until the user upgrades.
	ModeForce UpgradeMode = "force"
)

// DefaultRemindInterval is the single-reminder interval when a task sets none.
const DefaultRemindInterval = 72 * time.Hour

// Status is where a task is in its lifecycle.
type Status string

const (
	StatusDraft   Status = "draft"   // created, not yet delivered to anyone
	StatusLive    Status = "live"    // delivered to the devices it targets
	StatusPaused  Status = "paused"  // delivered to no one until resumed
	StatusStopped Status = "stopped" // finished for good
)

// Action is a lifecycle command an operator gives a task.
type Action string

const (
	ActionRelease Action = "release" // draft → live, in the task's stage
	ActionPromote Action = "promote" // gray → official: from the gray audience to everyone the rules admit
	ActionPause   Action = "pause"   // live → paused
	ActionResume  Action = "resume"  // paused → live
	ActionStop    Action = "stop"    // draft, live or paused → stopped
)

// Actions lists the lifecycle commands in the order people meet them.
var Actions = []Action{ActionRelease, ActionPromote, ActionPause, ActionResume, ActionStop}

// Task is a release task: it delivers one package to the devices it targets,
// under a delivery mode, through a lifecycle. Targeting (gray release) hangs
// off the task, so every kind of delivery shares it.
type Task struct {
	ID             int64         `json:"id"`
	AppID          int64         `json:"app_id"`
	PackageID      int64         `json:"package_id"`
	Kind           Kind          `json:"kind"`
	Mode           UpgradeMode   `json:"mode"`
	RemindInterval time.Duration `json:"-"`
	Status         Status        `json:"status"`
	Stage          Stage         `json:"stage"`
	Targeting      Targeting     `json:"targeting"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
	CreatedBy      string        `json:"created_by"`
}

// Validate checks the fields a caller provides and fills defaults.
func (t *Task) Validate() error {
	if t.Kind == "" {
		t.Kind = KindUpgrade
	}
	if t.Kind != KindUpgrade {
		return Errorf(EINVALID, "task kind %q is not one of upgrade", t.Kind)
	}
	switch t.Mode {
	case ModeSingle, ModeMultiple, ModeForce:
	case "":
		return Errorf(EINVALID, "choose an upgrade mode: single, multiple or force")
	default:
		return Errorf(EINVALID, "upgrade mode %q is not one of single, multiple, force", t.Mode)
	}
	switch {
	case t.RemindInterval < 0:
		return Errorf(EINVALID, "remind interval is negative")
	case t.RemindInterval == 0 && t.Mode == ModeSingle:
		t.RemindInterval = DefaultRemindInterval
	case t.RemindInterval != 0 && t.Mode != ModeSingle:
		return Errorf(EINVALID, "a remind interval applies to single-reminder tasks only")
	case t.RemindInterval > 0 && t.RemindInterval < time.Minute:
		return Errorf(EINVALID, "remind interval %s is shorter than a minute; use mode multiple to remind at every check", t.RemindInterval)
	}
	if t.PackageID <= 0 {
		return Errorf(EINVALID, "a task needs the package_id of the package it delivers")
	}
	return t.SetTargeting(t.Targeting)
}

// SetTargeting validates tg and makes it the task's targeting. A task
// without a stage takes gray when tg has a gray gate and official
// otherwise; a gray task must keep at least one gate.
func (t *Task) SetTargeting(tg Targeting) error {
	if err := tg.Validate(); err != nil {
		return err
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
	if tg.Salt == "" {
		tg.Salt = randomToken(10)
	}
	t.Targeting = tg
	return nil
}

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
		if t.Stage == StageGray && t.Status != StatusStopped {
			t.Stage = StageOfficial
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
		if t.Status != StatusStopped {
			t.Status = StatusStopped
			return nil
		}
	default:
		return Errorf(EINVALID, "action %q is not one of release, promote, pause, resume, stop", a)
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
