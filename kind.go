package mds

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mds-dev/mds/version"
)

// Kind is what a delivery brings to a device: a new native build, a
// hotpatch, an offline web package, configuration. Every kind is released
// through the same tasks, targeting and lifecycle; a kind brings only its
// payload (an artifact's Spec), how a task of it behaves (a task's Policy),
// what a device reports holding, and its section of the check answer.
type Kind string

const (
	KindUpgrade  Kind = "upgrade"  // a new native app version
	KindHotpatch Kind = "hotpatch" // a team-signed patch of exact installed versions
	KindOffline  Kind = "offline"  // a team-signed H5 offline package, delivered whole or as a delta
	KindConfig   Kind = "config"   // a gray change of remote configuration, over its namespace's version
)

// Kinds lists every kind in the order check answers carry their sections.
var Kinds = []Kind{KindUpgrade, KindHotpatch, KindOffline, KindConfig}

// Validate reports whether k is a known kind.
func (k Kind) Validate() error {
	switch k {
	case KindUpgrade, KindHotpatch, KindOffline, KindConfig:
		return nil
	}
	return Errorf(EINVALID, "kind %q is not one of upgrade, hotpatch, offline, config", string(k))
}

// NewSpec returns an empty artifact spec of kind k, to decode into.
func (k Kind) NewSpec() (ArtifactSpec, error) {
	switch k {
	case KindUpgrade:
		return &UpgradeSpec{}, nil
	case KindHotpatch:
		return &HotpatchSpec{}, nil
	case KindOffline:
		return &OfflineSpec{}, nil
	case KindConfig:
		return &ConfigSpec{}, nil
	}
	return nil, k.Validate()
}

// NewPolicy returns an empty task policy of kind k, to decode into.
func (k Kind) NewPolicy() (TaskPolicy, error) {
	switch k {
	case KindUpgrade:
		return &UpgradePolicy{}, nil
	case KindHotpatch:
		return &HotpatchPolicy{}, nil
	case KindOffline:
		return &OfflinePolicy{}, nil
	case KindConfig:
		return &ConfigPolicy{}, nil
	}
	return nil, k.Validate()
}

// DecodeSpec reads a spec of kind k from its stored JSON.
func DecodeSpec(k Kind, data []byte) (ArtifactSpec, error) {
	spec, err := k.NewSpec()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, spec); err != nil {
		return nil, fmt.Errorf("%s spec: %w", k, err)
	}
	return spec, nil
}

// DecodePolicy reads a policy of kind k from its stored JSON.
func DecodePolicy(k Kind, data []byte) (TaskPolicy, error) {
	p, err := k.NewPolicy()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("%s policy: %w", k, err)
	}
	return p, nil
}

// Artifact is one deliverable of an app: a native build, a hotpatch, an
// offline package. The header is what every kind shares; Spec holds what is
// particular to its kind. Artifacts are immutable once created: a fix is a
// new artifact, so what a device was told about one never changes under it.
type Artifact struct {
	ID       int64
	AppID    int64
	Kind     Kind
	Platform Platform
	Version  string // the version the artifact brings, e.g. "2.4.0"
	// Blobs are the stored files the artifact consists of. They are the
	// spec's (ArtifactSpec.Blobs), set by Validate, and each must have been
	// uploaded to the artifact's app.
	Blobs     []BlobRef
	Spec      ArtifactSpec
	CreatedAt time.Time
	CreatedBy string
}

// BlobRef names one stored file of an artifact.
type BlobRef struct {
	Role   string `json:"role"` // what the file is to the artifact, e.g. "package"
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ArtifactSpec is the kind-specific part of an artifact.
type ArtifactSpec interface {
	Kind() Kind
	// Validate checks the spec against its artifact's header, normalising
	// what it safely can, and says precisely what is wrong otherwise.
	Validate(a *Artifact) error
	// Blobs lists the stored files the artifact consists of.
	Blobs() []BlobRef
}

// Validate checks the header and the spec and derives the blob list.
func (a *Artifact) Validate() error {
	if err := a.Kind.Validate(); err != nil {
		return err
	}
	if a.Spec == nil || a.Spec.Kind() != a.Kind {
		return Errorf(EINVALID, "a %s artifact needs a %s spec", a.Kind, a.Kind)
	}
	if a.Platform != "" {
		if err := a.Platform.Validate(); err != nil {
			return err
		}
	}
	if err := version.Valid(a.Version); err != nil {
		return Errorf(EINVALID, "%v", err)
	}
	if err := a.Spec.Validate(a); err != nil {
		return err
	}
	a.Blobs = a.Spec.Blobs()
	return nil
}

// TaskPolicy is how a task of one kind behaves beyond targeting: for an
// upgrade, how insistently it reminds.
type TaskPolicy interface {
	Kind() Kind
	// Validate checks the policy and fills defaults.
	Validate() error
}
