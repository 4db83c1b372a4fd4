package bundle

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/mds-dev/mds"
)

// What every kind's manifest shares: a canonical JSON encoding, which is
// what the team signs, and the time it was made, in one spelling.

// Manifest is a kind's manifest: a struct whose field order is the order
// of its canonical encoding, and which says what is wrong with it.
type Manifest interface {
	Validate() error
}

// EncodeManifest validates m and returns its canonical bytes: compact
// JSON in field order, without HTML escaping (so that "<" in notes stays
// one byte, as implementations on other platforms write it), at most
// MaxManifest bytes.
func EncodeManifest(m Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := canonicalJSON(m)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifest {
		return nil, mds.Errorf(mds.EINVALID, "the manifest is %d bytes; at most %d: ship fewer files, or shorter paths", len(b), MaxManifest)
	}
	return b, nil
}

func canonicalJSON(m Manifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeManifest reads manifest.json into m, a manifest of format (its
// name and revision, for messages) that f packs. It accepts only the
// canonical encoding of a valid manifest, without unknown or duplicate
// members, so that one content has one encoding and what a verifier
// checked the signature of is exactly what it parsed.
func DecodeManifest(b []byte, m Manifest, format string, f Format) error {
	if len(b) > MaxManifest {
		return mds.Errorf(mds.EINVALID, "manifest.json is %d bytes; at most %d", len(b), MaxManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return mds.Errorf(mds.EINVALID, "manifest.json is not a %s manifest: %v", format, err)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	enc, err := canonicalJSON(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(enc, b) {
		return mds.Errorf(mds.EINVALID, "manifest is not in canonical form: it must be compact JSON with the fields in protocol order and nothing else, as mds writes it; %s", f.repack())
	}
	return nil
}

// stampLayout is the only accepted shape of a manifest's created_at: UTC,
// to the second, so that one instant has one spelling.
const stampLayout = "2006-01-02T15:04:05Z"

// Stamp is t as a manifest's created_at.
func Stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(stampLayout) }

// ValidStamp checks a manifest's created_at.
func ValidStamp(s string) error {
	if t, err := time.Parse(time.RFC3339, s); err != nil || t.UTC().Format(stampLayout) != s {
		return mds.Errorf(mds.EINVALID, "created_at %q must be a UTC time to the second, like 2026-12-04T02:00:00Z", s)
	}
	return nil
}

// ParseStamp returns created_at s as a time; the zero time if it does not
// parse.
func ParseStamp(s string) time.Time {
	t, _ := time.Parse(stampLayout, s)
	return t
}
