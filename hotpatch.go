package mds

import (
	"fmt"
	"slices"
	"time"

	"github.com/mds-dev/mds/version"
)

// The hotpatch kind: an app team's signed set of files (a dex or so patch,
// a script, a bundle: opaque bytes to mds) that fixes exact installed
// versions of one app on one platform, without a store release. The
// server checks the team's signature on upload against the app's
// registered team keys, and devices check it again against the keys their
// build trusts, so a server that is not the team's cannot ship code.

// HotpatchTarget is one installed app version a hotpatch patches.
type HotpatchTarget struct {
	AppVersion string `json:"app_version"`     // exact, as the device reports it
	Build      int64  `json:"build,omitempty"` // 0 for every build of the version
}

// Matches reports whether a device of app version v and build b is t.
func (t HotpatchTarget) Matches(v string, b int64) bool {
	return t.AppVersion == v && (t.Build == 0 || t.Build == b)
}

// HotpatchSpec is the spec of a hotpatch artifact: what the server read
// out of the signed manifest of the uploaded file, which is the one blob
// devices download and check.
type HotpatchSpec struct {
	PatchVersion int64            `json:"patch_version"`
	Targets      []HotpatchTarget `json:"targets"`
	Notes        string           `json:"notes"`
	KeyID        string           `json:"key_id"`    // the team key that signed it
	SignedAt     time.Time        `json:"signed_at"` // the manifest's creation time
	Files        int              `json:"files"`     // how many files it holds
	FilesSize    int64            `json:"files_size"`
	SHA256       string           `json:"sha256"` // the hotpatch file's
	Size         int64            `json:"size"`
}

// BlobHotpatch is the role of a hotpatch's file.
const BlobHotpatch = "hotpatch"

// MaxHotpatchTargets bounds the app versions one hotpatch patches.
const MaxHotpatchTargets = 100

// Kind implements ArtifactSpec.
func (*HotpatchSpec) Kind() Kind { return KindHotpatch }

// Blobs implements ArtifactSpec.
func (p *HotpatchSpec) Blobs() []BlobRef {
	return []BlobRef{{Role: BlobHotpatch, SHA256: p.SHA256, Size: p.Size}}
}

// Validate implements ArtifactSpec. The artifact's version is the patch
// version, so lists and explanations show it like any other.
func (p *HotpatchSpec) Validate(a *Artifact) error {
	if a.Platform == "" {
		return Errorf(EINVALID, "a hotpatch needs a platform: android, ios or harmony")
	}
	if p.PatchVersion < 1 {
		return Errorf(EINVALID, "patch version %d must be 1 or more", p.PatchVersion)
	}
	if a.Version != fmt.Sprint(p.PatchVersion) {
		return Errorf(EINVALID, "a hotpatch's version is its patch version %d, not %q", p.PatchVersion, a.Version)
	}
	if len(p.Targets) == 0 || len(p.Targets) > MaxHotpatchTargets {
		return Errorf(EINVALID, "a hotpatch patches 1 to %d app versions; it names %d", MaxHotpatchTargets, len(p.Targets))
	}
	seen := map[HotpatchTarget]bool{}
	for _, t := range p.Targets {
		if err := version.Valid(t.AppVersion); err != nil {
			return Errorf(EINVALID, "hotpatch app version: %v", err)
		}
		if t.Build < 0 {
			return Errorf(EINVALID, "hotpatch build %d is negative", t.Build)
		}
		if seen[t] {
			return Errorf(EINVALID, "the hotpatch names app version %s build %d twice", t.AppVersion, t.Build)
		}
		seen[t] = true
	}
	if err := ValidText("release notes", p.Notes, MaxNotes, true); err != nil {
		return err
	}
	if !ValidSHA256(p.KeyID) {
		return Errorf(EINVALID, "key id %q must be 64 lowercase hex digits", p.KeyID)
	}
	if !ValidSHA256(p.SHA256) || p.Size <= 0 {
		return Errorf(EINVALID, "a hotpatch needs the sha256 and size of its uploaded file")
	}
	if p.Files < 1 || p.FilesSize < 0 {
		return Errorf(EINVALID, "a hotpatch holds at least one file")
	}
	return nil
}

// AppVersions lists the distinct app versions the hotpatch patches, in
// the order of its targets: patch versions grow per app version, whatever
// the build.
func (p *HotpatchSpec) AppVersions() []string {
	var out []string
	for _, t := range p.Targets {
		if !slices.Contains(out, t.AppVersion) {
			out = append(out, t.AppVersion)
		}
	}
	return out
}

// HotpatchPolicy is how a hotpatch task behaves: like any task, through
// its targeting; a hotpatch carries its own instructions.
type HotpatchPolicy struct{}

// Kind implements TaskPolicy.
func (*HotpatchPolicy) Kind() Kind { return KindHotpatch }

// Validate implements TaskPolicy.
func (*HotpatchPolicy) Validate() error { return nil }

// AppliedPatch is what a device reports of the hotpatch kind: the patch it
// runs, if any. The answer is exact from it: apply a patch, roll this one
// back, or nothing.
type AppliedPatch struct {
	ID           int64 `json:"patch_id"`
	PatchVersion int64 `json:"patch_version"`
}

// TeamKey is a public key an app team signs its hotpatches with,
// registered with the app; the private half never reaches the server.
// Rotation: register the new key, ship a build that trusts it, release
// with it, retire the old one. A retired key stays listed and is never
// accepted again.
type TeamKey struct {
	ID        string    `json:"id"` // signing.PublicKey.ID: SHA-256 of the PKIX key, hex
	AppID     int64     `json:"-"`
	Alg       string    `json:"alg"`
	PEM       string    `json:"public_key"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// RetiredAt is set once the key is retired, and then never changes.
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	RetiredBy string     `json:"retired_by,omitempty"`
}

// Active reports whether packages signed by k are accepted.
func (k *TeamKey) Active() bool { return k.RetiredAt == nil }
