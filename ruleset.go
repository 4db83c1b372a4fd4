package mds

import (
	"regexp"
	"time"
)

// RuleSet is a named, reusable list of rules of one app ("release rules"):
// edit it once and every task that refers to it follows.
type RuleSet struct {
	ID        int64     `json:"id"`
	AppID     int64     `json:"app_id"`
	Name      string    `json:"name"`
	Rules     []Rule    `json:"rules"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var objectNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$`)

// Validate checks a rule set's name and rules.
func (s *RuleSet) Validate() error {
	if !objectNamePattern.MatchString(s.Name) {
		return Errorf(EINVALID, "name %q must be 1-64 letters, digits, spaces or _ . -", s.Name)
	}
	if len(s.Rules) == 0 {
		return Errorf(EINVALID, "a rule set needs at least one rule")
	}
	t := Targeting{Rules: s.Rules}
	return t.Validate()
}
