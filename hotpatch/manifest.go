package hotpatch

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/version"
)

// Format is the value of every manifest's format field: the name and
// revision of this protocol.
const Format = "mds-hotpatch/1"

// Bounds of the manifest's fields.
const (
	MaxManifest = bundle.MaxManifest // bytes of manifest.json
	MaxTargets  = 100                // targets of one manifest
	MaxAppKey   = 256                // bytes of the app key
)

// Target is one installed app version a hotpatch patches: the domain's,
// which the server keeps in the package it stores.
type Target = mds.HotpatchTarget

// File is one file a hotpatch holds: its path under the patch root, and
// the size and SHA-256 of its bytes.
type File = bundle.File

// Manifest describes a hotpatch: what it patches and what it holds. Its
// canonical bytes are what the app team signs. The field order here is the
// order of the canonical encoding; changing it changes the protocol.
type Manifest struct {
	Format       string       `json:"format"`
	AppKey       string       `json:"app_key"` // the app's device key (mds.App.Key)
	Platform     mds.Platform `json:"platform"`
	Targets      []Target     `json:"targets"` // sorted by app version bytewise, then build
	PatchVersion int64        `json:"patch_version"`
	Notes        string       `json:"notes"`
	CreatedAt    string       `json:"created_at"` // RFC 3339 UTC to the second
	KeyID        string       `json:"key_id"`     // signing.PublicKey.ID of the signing key
	Alg          signing.Alg  `json:"alg"`
	Files        []File       `json:"files"` // sorted by path bytewise
}

// Validate checks every field of m, and the orders the canonical form
// requires: it does not sort, so that what it accepts encodes as it is.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		return mds.Errorf(mds.EINVALID, "the manifest's format is %q; this version of mds reads %q only", m.Format, Format)
	}
	if m.AppKey == "" {
		return mds.Errorf(mds.EINVALID, "the manifest has no app_key; give the device key of the app the patch is for")
	}
	if err := mds.ValidText("app key", m.AppKey, MaxAppKey, false); err != nil {
		return err
	}
	if err := m.Platform.Validate(); err != nil {
		return err
	}
	if err := validTargets(m.Targets); err != nil {
		return err
	}
	if m.PatchVersion < 1 {
		return mds.Errorf(mds.EINVALID, "patch version %d must be 1 or more", m.PatchVersion)
	}
	if err := mds.ValidText("release notes", m.Notes, mds.MaxNotes, true); err != nil {
		return err
	}
	if err := bundle.ValidStamp(m.CreatedAt); err != nil {
		return err
	}
	if !mds.ValidSHA256(m.KeyID) {
		return mds.Errorf(mds.EINVALID, "key_id %q must be 64 lowercase hex digits: the ID of the key that signs the patch", m.KeyID)
	}
	if !slices.Contains(signing.Algs, m.Alg) {
		return mds.Errorf(mds.EINVALID, "alg %q is not one of %s, %s", m.Alg, signing.ECDSAP256, signing.Ed25519)
	}
	return bundle.ValidFiles(m.Files)
}

func compareTargets(a, b Target) int {
	return cmp.Or(strings.Compare(a.AppVersion, b.AppVersion), cmp.Compare(a.Build, b.Build))
}

func validTargets(ts []Target) error {
	if len(ts) == 0 || len(ts) > MaxTargets {
		return mds.Errorf(mds.EINVALID, "a hotpatch patches 1 to %d app versions; the manifest names %d", MaxTargets, len(ts))
	}
	for i, t := range ts {
		if err := version.Valid(t.AppVersion); err != nil {
			return mds.Errorf(mds.EINVALID, "target app version: %v", err)
		}
		if t.Build < 0 {
			return mds.Errorf(mds.EINVALID, "target %s has build %d; give a build of 1 or more, or 0 for every build", t.AppVersion, t.Build)
		}
		if i == 0 {
			continue
		}
		switch c := compareTargets(ts[i-1], t); {
		case c == 0:
			return mds.Errorf(mds.EINVALID, "the manifest names app version %s build %d twice", t.AppVersion, t.Build)
		case c > 0:
			return mds.Errorf(mds.EINVALID, "targets must be sorted by app version (bytewise), then build; %s build %d comes after %s build %d", t.AppVersion, t.Build, ts[i-1].AppVersion, ts[i-1].Build)
		}
	}
	return nil
}

// Encode validates m and returns its canonical bytes: what the team
// signs, and what manifest.json holds.
func (m *Manifest) Encode() ([]byte, error) { return bundle.EncodeManifest(m) }

// ParseManifest reads manifest.json, in canonical form only (see
// bundle.DecodeManifest).
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := bundle.DecodeManifest(b, &m, Format, kind); err != nil {
		return nil, err
	}
	return &m, nil
}

// Created returns CreatedAt as a time; the zero time if it does not parse.
func (m *Manifest) Created() time.Time { return bundle.ParseStamp(m.CreatedAt) }

// TotalSize is the sum of the sizes of the manifest's files.
func (m *Manifest) TotalSize() int64 { return bundle.TotalSize(m.Files) }
