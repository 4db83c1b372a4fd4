package httpapi

import (
	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
)

// The hotpatch kind over HTTP: its section of the check answer.

// Hotpatch actions: run this patch, or go back from the one the device
// runs, which was withdrawn.
const (
	hotpatchApply    = "apply"
	hotpatchRollback = "rollback"
)

// hotpatchAnswer is the hotpatch section of a check answer: the patch the
// device should run. A rollback to no patch has only the action.
type hotpatchAnswer struct {
	Action       string    `json:"action"`
	TaskID       int64     `json:"task_id,omitempty"`
	Stage        mds.Stage `json:"stage,omitempty"`
	PatchID      int64     `json:"patch_id"`
	PatchVersion int64     `json:"patch_version,omitempty"`
	Notes        string    `json:"notes,omitempty"`
	URL          string    `json:"url,omitempty"`
	SHA256       string    `json:"sha256,omitempty"`
	Size         int64     `json:"size,omitempty"`
	KeyID        string    `json:"key_id,omitempty"`
}

// rollbackToNone tells a device to go back to running no patch.
var rollbackToNone = newSection(&hotpatchAnswer{Action: hotpatchRollback})

// hotpatch returns the hotpatch section for choice c.
func (set *answerSet) hotpatch(c delivery.HotpatchChoice) *section {
	o := c.Offer
	switch {
	case o == nil && c.Rollback:
		return rollbackToNone
	case o == nil:
		return nullSection
	}
	v, action := 0, hotpatchApply
	if c.Rollback {
		v, action = 1, hotpatchRollback
	}
	return set.memo(o.Offer, v, func() any {
		p := o.Spec
		return &hotpatchAnswer{Action: action, TaskID: o.Task.ID, Stage: o.Task.Stage, PatchID: o.Artifact.ID,
			PatchVersion: p.PatchVersion, Notes: p.Notes, URL: set.links.blob(p.SHA256), SHA256: p.SHA256,
			Size: p.Size, KeyID: p.KeyID}
	})
}
