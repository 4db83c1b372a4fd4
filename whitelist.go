package mds

import (
	"bufio"
	"errors"
	"io"
	"iter"
	"regexp"
	"strings"
	"time"
)

// Whitelist is a reusable list of user or device IDs of one app. Entries
// are exact IDs, or regular expressions written "re:<expression>".
type Whitelist struct {
	ID        int64         `json:"id"`
	AppID     int64         `json:"app_id"`
	Name      string        `json:"name"`
	Kind      WhitelistKind `json:"kind"`
	Entries   int           `json:"entries"`  // how many, regular expressions included
	Patterns  int           `json:"patterns"` // how many are regular expressions
	Version   int64         `json:"version"`  // grows with every change of the entries
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// WhitelistKind says which identifier a whitelist lists.
type WhitelistKind string

const (
	WhitelistUsers   WhitelistKind = "user"
	WhitelistDevices WhitelistKind = "device"
)

// Whitelist limits.
const (
	MaxWhitelistEntries  = 1_000_000
	MaxWhitelistPatterns = 100
	MaxEntryLen          = MaxDeviceField
)

// Validate checks a whitelist's name and kind.
func (w *Whitelist) Validate() error {
	if err := ValidName("whitelist name", w.Name); err != nil {
		return err
	}
	if w.Kind != WhitelistUsers && w.Kind != WhitelistDevices {
		return Errorf(EINVALID, "kind %q is not one of user, device", w.Kind)
	}
	return nil
}

// PatternPrefix marks a whitelist entry as a regular expression.
const PatternPrefix = "re:"

// ParseEntry checks one whitelist entry and reports whether it is a
// regular expression.
func ParseEntry(e string) (pattern bool, err error) {
	if e == "" {
		return false, Errorf(EINVALID, "empty entry")
	}
	if len(e) > MaxEntryLen {
		return false, Errorf(EINVALID, "entry is longer than %d bytes", MaxEntryLen)
	}
	if expr, ok := strings.CutPrefix(e, PatternPrefix); ok {
		if _, err := regexp.Compile(expr); err != nil {
			return true, Errorf(EINVALID, "entry %q is not a valid regular expression: %v", e, err)
		}
		return true, nil
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= ' ' || e[i] == 0x7f {
			return false, Errorf(EINVALID, "entry %q contains a space or control character", e)
		}
	}
	return false, nil
}

// maxWhitelistLines bounds a whitelist file: duplicates are allowed, so it
// may hold more lines than MaxWhitelistEntries, but not without limit.
const maxWhitelistLines = 2 * MaxWhitelistEntries

// ParseWhitelist reads whitelist entries from r, one per line. A line may
// be CSV: its first field is the entry. Blank lines and lines starting with
// "#" are skipped, and so is a first line that names a column (id,
// user_id, device_id). Errors name the line, and stop the sequence.
func ParseWhitelist(r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if line == 1 {
				text = strings.TrimPrefix(text, "\ufeff") // a spreadsheet's byte order mark
			}
			if text == "" || text[0] == '#' {
				continue
			}
			entry := text
			if i := strings.IndexByte(text, ','); i >= 0 && !strings.HasPrefix(text, PatternPrefix) {
				entry = strings.TrimSpace(text[:i])
			}
			entry = strings.Trim(entry, `"`)
			if line == 1 {
				switch strings.ToLower(entry) {
				case "id", "user_id", "userid", "device_id", "deviceid", "user", "device":
					continue
				}
			}
			if line > maxWhitelistLines {
				yield("", Errorf(ETOOLARGE, "line %d: a whitelist file holds at most %d lines", line, maxWhitelistLines))
				return
			}
			if _, err := ParseEntry(entry); err != nil {
				yield("", Errorf(EINVALID, "line %d: %s", line, ErrorMessage(err)))
				return
			}
			if !yield(entry, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = Errorf(EINVALID, "line %d: longer than 64 KiB; is this a whitelist file?", line+1)
			}
			yield("", err)
		}
	}
}
