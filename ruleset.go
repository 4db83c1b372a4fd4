package mds

import (
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

// Validate checks a rule set's name and rules.
func (s *RuleSet) Validate() error {
	if err := ValidName("rule set name", s.Name); err != nil {
		return err
	}
	if len(s.Rules) == 0 {
		return Errorf(EINVALID, "a rule set needs at least one rule")
	}
	t := Targeting{Rules: s.Rules}
	return t.Validate()
}
