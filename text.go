package mds

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds names and channels, in characters (runes), so that a
// name in any script gets the same room.
const MaxNameLen = 64

// ValidName checks the name of an object people pick from a list (a rule
// set, a whitelist): 1 to MaxNameLen letters of any script, combining marks,
// digits, spaces and _ . -, starting with a letter or digit and not ending
// with a space, so that "测试名单" and "beta testers" pass and two names
// that look alike differ in more than a trailing space. what names the
// field in the message ("rule set name").
func ValidName(what, s string) error {
	return checkName(what, s, true)
}

// ValidChannel checks a distribution channel ("huawei", "华为", "google_play"):
// 1 to MaxNameLen letters, combining marks, digits and _ . -, no spaces.
func ValidChannel(s string) error {
	return checkName("channel", s, false)
}

func checkName(what, s string, spaces bool) error {
	allowed := "letters, digits and _ . -"
	if spaces {
		allowed = "letters, digits, spaces and _ . -"
	}
	if s == "" {
		return Errorf(EINVALID, "%s is empty; give it 1-%d %s", what, MaxNameLen, allowed)
	}
	// Checked in bytes first, so that the loop below is bounded however
	// long the input.
	if len(s) > MaxNameLen*utf8.UTFMax || utf8.RuneCountInString(s) > MaxNameLen {
		return Errorf(EINVALID, "%s %.40q… is longer than %d characters", what, s, MaxNameLen)
	}
	pos := 0
	for i, r := range s {
		pos++
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return Errorf(EINVALID, "%s %q is not valid UTF-8 at character %d (byte 0x%02X)", what, s, pos, s[i])
			}
		}
		ok := unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || r == '_' || r == '.' || r == '-' || spaces && r == ' '
		if !ok {
			return Errorf(EINVALID, "%s %q has %s at character %d; use %s", what, s, describeRune(r), pos, allowed)
		}
		if pos == 1 && spaces && !unicode.IsLetter(r) && !unicode.IsNumber(r) {
			return Errorf(EINVALID, "%s %q must start with a letter or digit, not %s", what, s, describeRune(r))
		}
	}
	if spaces && s[len(s)-1] == ' ' {
		return Errorf(EINVALID, "%s %q ends with a space; remove it", what, s)
	}
	return nil
}

// ValidText checks free text shown to people (release notes, a rule's
// value): at most max bytes of valid UTF-8 without control characters
// (C0, DEL, C1) or the bidirectional overrides and isolates (U+202A-U+202E,
// U+2066-U+2069) that can make text display in another order than it is
// stored, hiding what it says. multiline allows line feeds and tabs, and a
// carriage return only as part of "\r\n", which editors on Windows write:
// a lone carriage return sends a terminal back to the start of the line,
// where what follows overwrites what came before. Empty text is valid;
// whether a field is required is the caller's business. Positions in
// messages count characters (runes) from 1.
func ValidText(what, s string, max int, multiline bool) error {
	if problem := textProblem(s, max, multiline); problem != "" {
		return Errorf(EINVALID, "%s %s", what, problem)
	}
	return nil
}

// textProblem returns what is wrong with s as the end of a sentence whose
// subject the caller supplies, or "". It formats only on failure, so that
// checking the thousands of values of a rule costs no allocation.
func textProblem(s string, max int, multiline bool) string {
	if len(s) > max {
		return fmt.Sprintf("is %d bytes long; shorten it to at most %d", len(s), max)
	}
	pos := 0
	for i, r := range s {
		pos++
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("is not valid UTF-8 at character %d (byte 0x%02X)", pos, s[i])
			}
		case r == '\n' || r == '\t':
			if !multiline {
				return fmt.Sprintf("has %s at character %d; it must be one line without tabs", describeRune(r), pos)
			}
		case r == '\r':
			if !multiline {
				return fmt.Sprintf("has %s at character %d; it must be one line", describeRune(r), pos)
			}
			if i+1 == len(s) || s[i+1] != '\n' {
				return fmt.Sprintf("has a carriage return (U+000D) not followed by a line feed at character %d; end lines with \\n or \\r\\n", pos)
			}
		case r < 0x20 || 0x7f <= r && r <= 0x9f:
			return fmt.Sprintf("has the control character %s at character %d; remove it", describeRune(r), pos)
		case 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069:
			return fmt.Sprintf("has the bidirectional control character %s at character %d, which can make text display in another order than it is stored; remove it", describeRune(r), pos)
		}
	}
	return ""
}

// describeRune names a character for a message: quoted when it prints,
// and always with its code point, which is what a person can search for.
func describeRune(r rune) string {
	switch {
	case r == '\n':
		return "a line feed (U+000A)"
	case r == '\t':
		return "a tab (U+0009)"
	case r == '\r':
		return "a carriage return (U+000D)"
	case r == ' ':
		return "a space (U+0020)"
	case unicode.IsPrint(r):
		return fmt.Sprintf("%q (U+%04X)", string(r), r)
	}
	return fmt.Sprintf("U+%04X", r)
}
