package httpapi

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/mds-dev/mds"
)

// The check body is decoded here rather than by encoding/json: its shape
// is small and fixed, and reflection costs a device check most of what it
// costs (allocations above all). For valid input the result is what
// json.Unmarshal into an mds.Device gives — keys matched as it matches
// them, null and duplicate keys treated as it treats them — and what it
// refuses, this refuses (FuzzDecodeDevice holds the two together). One
// deliberate difference: a body that is not UTF-8 is refused, where
// encoding/json would replace the bad bytes.
//
// Nothing is allocated. String fields point into the body, which is
// unescaped in place (an escape is never shorter than what it stands for),
// and the attributes go into a map the caller lends. So the body must
// neither change nor be reused while the device is in use, and whatever
// keeps a device's strings past the check must copy them.

// deviceDecoder holds what decoding one body needs.
type deviceDecoder struct {
	b       []byte
	i       int
	attrs   map[string]string // lent for Attributes, cleared before use
	offline map[string]string // lent for Offline, cleared before use
	// Where DeviceTime, LastReminded and Hotpatch point when the body
	// sets them.
	deviceTime time.Time
	reminded   mds.Reminder
	patch      mds.AppliedPatch

	typeErr *mds.Error // the first value of the wrong type; syntax errors take precedence
	depth   int        // objects and arrays open at d.i
}

// maxNesting bounds how deeply objects and arrays may nest, as
// encoding/json bounds them.
const maxNesting = 10000

// decode decodes b into dev, which must be zero.
func (d *deviceDecoder) decode(b []byte, dev *mds.Device) error {
	d.b, d.i, d.typeErr, d.depth = b, 0, nil, 0
	d.ws()
	if d.i == len(d.b) {
		return mds.Errorf(mds.EINVALID, "body is empty; send the device context as JSON")
	}
	if c := d.b[d.i]; c == 'n' {
		// encoding/json decodes null into a struct as nothing at all.
		if err := d.literal("null"); err != nil {
			return err
		}
		return d.end()
	} else if c != '{' {
		if err := d.skip(); err != nil {
			return err
		}
		if err := d.end(); err != nil {
			return err
		}
		return mds.Errorf(mds.EINVALID, "body must be a JSON object with the device's context, not a JSON %s", jsonType(c))
	}
	err := d.object(func(key []byte) error { return d.deviceField(key, dev) })
	if err != nil {
		return err
	}
	if err := d.end(); err != nil {
		return err
	}
	if d.typeErr != nil {
		return d.typeErr
	}
	return nil
}

// end refuses anything but white space after the top-level value.
func (d *deviceDecoder) end() error {
	d.ws()
	if d.i < len(d.b) {
		return mds.Errorf(mds.EINVALID, "body holds more than one JSON value, or something after it at byte %d; send one object", d.i+1)
	}
	return nil
}

// deviceField decodes the value of the device's member key.
func (d *deviceDecoder) deviceField(key []byte, dev *mds.Device) error {
	var s *string
	var name string // the field, for errors: constants, as key points into the body
	var folded [16]byte
	switch string(foldKey(key, &folded)) {
	case "app_key":
		s, name = &dev.AppKey, "app_key"
	case "platform":
		s, name = (*string)(&dev.Platform), "platform"
	case "app_version":
		s, name = &dev.AppVersion, "app_version"
	case "build":
		return d.int("build", &dev.Build)
	case "device_id":
		s, name = &dev.DeviceID, "device_id"
	case "user_id":
		s, name = &dev.UserID, "user_id"
	case "model":
		s, name = &dev.Model, "model"
	case "brand":
		s, name = &dev.Brand, "brand"
	case "os_version":
		s, name = &dev.OSVersion, "os_version"
	case "network":
		s, name = &dev.Network, "network"
	case "region":
		s, name = &dev.Region, "region"
	case "city":
		s, name = &dev.City, "city"
	case "channel":
		s, name = &dev.Channel, "channel"
	case "language":
		s, name = &dev.Language, "language"
	case "attributes":
		return d.stringMap("attributes", &dev.Attributes, d.attrs)
	case "offline":
		return d.stringMap("offline", &dev.Offline, d.offline)
	case "device_time":
		return d.timePointer("device_time", &dev.DeviceTime, &d.deviceTime)
	case "last_reminded":
		return d.reminder(dev)
	case "hotpatch":
		return d.hotpatch(dev)
	default:
		return d.skip()
	}
	return d.string(name, s)
}

// string decodes a string value into s; null leaves s alone.
func (d *deviceDecoder) string(field string, s *string) error {
	switch c := d.peek(); c {
	case '"':
		v, err := d.str()
		if err != nil {
			return err
		}
		*s = v
		return nil
	case 'n':
		return d.literal("null")
	default:
		return d.wrongType(field, "string", c)
	}
}

// int decodes an integer into n; null leaves n alone.
func (d *deviceDecoder) int(field string, n *int64) error {
	switch c := d.peek(); {
	case c == 'n':
		return d.literal("null")
	case c == '-' || isDigit(c):
		start := d.i
		if err := d.number(); err != nil {
			return err
		}
		v, err := strconv.ParseInt(unsafe.String(&d.b[start], d.i-start), 10, 64)
		if err != nil {
			d.typeError(mds.Errorf(mds.EINVALID, "field %s must be a whole number, not %.32s", field, d.b[start:d.i]))
			return nil
		}
		*n = v
		return nil
	default:
		return d.wrongType(field, "number", c)
	}
}

// stringMap decodes an object of strings into *m, the lent map when the
// body sets it first; null removes it.
func (d *deviceDecoder) stringMap(field string, m *map[string]string, lent map[string]string) error {
	switch c := d.peek(); c {
	case 'n':
		*m = nil
		return d.literal("null")
	case '{':
		if *m == nil {
			clear(lent)
			*m = lent
		}
		return d.object(func(key []byte) error {
			var v string // null stores "", as encoding/json has it
			if err := d.string(field, &v); err != nil {
				return err
			}
			(*m)[unsafe.String(unsafe.SliceData(key), len(key))] = v
			return nil
		})
	default:
		return d.wrongType(field, "object", c)
	}
}

// timePointer decodes an RFC 3339 time into *p, pointing it at t; null
// sets *p to nil. Time's own UnmarshalJSON reads it, as encoding/json has
// it do.
func (d *deviceDecoder) timePointer(field string, p **time.Time, t *time.Time) error {
	if d.peek() == 'n' {
		*p = nil
		return d.literal("null")
	}
	if *p == nil {
		*t = time.Time{}
		*p = t
	}
	return d.time(field, *p)
}

func (d *deviceDecoder) time(field string, t *time.Time) error {
	start := d.i
	if err := d.skip(); err != nil { // strings are left escaped, as Time reads them
		return err
	}
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		d.typeError(mds.Errorf(mds.EINVALID, "field %s must be an RFC 3339 time as a JSON string, like \"2026-01-02T15:04:05Z\"", field))
	}
	return nil
}

// reminder decodes last_reminded.
func (d *deviceDecoder) reminder(dev *mds.Device) error {
	switch c := d.peek(); c {
	case 'n':
		dev.LastReminded = nil
		return d.literal("null")
	case '{':
		if dev.LastReminded == nil {
			d.reminded = mds.Reminder{}
			dev.LastReminded = &d.reminded
		}
		r := dev.LastReminded
		return d.object(func(key []byte) error {
			var folded [16]byte
			switch string(foldKey(key, &folded)) {
			case "task_id":
				return d.int("last_reminded.task_id", &r.TaskID)
			case "at":
				if d.peek() == 'n' {
					return d.literal("null")
				}
				return d.time("last_reminded.at", &r.At)
			}
			return d.skip()
		})
	default:
		return d.wrongType("last_reminded", "object", c)
	}
}

// hotpatch decodes hotpatch, the patch the device runs.
func (d *deviceDecoder) hotpatch(dev *mds.Device) error {
	switch c := d.peek(); c {
	case 'n':
		dev.Hotpatch = nil
		return d.literal("null")
	case '{':
		if dev.Hotpatch == nil {
			d.patch = mds.AppliedPatch{}
			dev.Hotpatch = &d.patch
		}
		p := dev.Hotpatch
		return d.object(func(key []byte) error {
			var folded [16]byte
			switch string(foldKey(key, &folded)) {
			case "patch_id":
				return d.int("hotpatch.patch_id", &p.ID)
			case "patch_version":
				return d.int("hotpatch.patch_version", &p.PatchVersion)
			}
			return d.skip()
		})
	default:
		return d.wrongType("hotpatch", "object", c)
	}
}

// wrongType records that field holds a value of another type, and skips it.
func (d *deviceDecoder) wrongType(field, want string, c byte) error {
	if err := d.skip(); err != nil {
		return err
	}
	d.typeError(mds.Errorf(mds.EINVALID, "field %s must be a JSON %s, not a JSON %s", field, want, jsonType(c)))
	return nil
}

func (d *deviceDecoder) typeError(err *mds.Error) {
	if d.typeErr == nil {
		d.typeErr = err
	}
}

// object decodes an object, calling member with each key (unescaped; it
// points into the body) positioned at its value.
func (d *deviceDecoder) object(member func(key []byte) error) error {
	if err := d.open(); err != nil {
		return err
	}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		d.ws()
		if d.peek() != '"' {
			return d.syntax("expected a string key")
		}
		key, err := d.rawStr(true)
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return d.syntax("expected ':' after a key")
		}
		d.i++
		d.ws()
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return nil
		default:
			return d.syntax("expected ',' or '}' after a value")
		}
	}
}

// open enters the object or array at d.i.
func (d *deviceDecoder) open() error {
	if d.depth == maxNesting {
		return d.syntax("objects and arrays nested too deeply")
	}
	d.i++
	d.depth++
	return nil
}

// skip validates and passes over one value.
func (d *deviceDecoder) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.rawStr(false)
		return err
	case c == '{':
		return d.object(func([]byte) error { return d.skip() })
	case c == '[':
		if err := d.open(); err != nil {
			return err
		}
		d.ws()
		if d.peek() == ']' {
			d.i++
			d.depth--
			return nil
		}
		for {
			d.ws()
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				d.depth--
				return nil
			default:
				return d.syntax("expected ',' or ']' in an array")
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || isDigit(c):
		return d.number()
	case d.i == len(d.b):
		return d.syntax("unexpected end of body")
	}
	return d.syntax("expected a value")
}

func (d *deviceDecoder) literal(word string) error {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return d.syntax("expected " + word)
	}
	d.i += len(word)
	return nil
}

// number passes over a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *deviceDecoder) number() error {
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case isDigit(c):
		d.digits()
	default:
		return d.syntax("expected a digit")
	}
	if d.peek() == '.' {
		d.i++
		if !isDigit(d.peek()) {
			return d.syntax("expected a digit after '.'")
		}
		d.digits()
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !isDigit(d.peek()) {
			return d.syntax("expected a digit in the exponent")
		}
		d.digits()
	}
	return nil
}

func (d *deviceDecoder) digits() {
	for d.i < len(d.b) && isDigit(d.b[d.i]) {
		d.i++
	}
}

// str decodes a string, as a string pointing into the body.
func (d *deviceDecoder) str() (string, error) {
	b, err := d.rawStr(true)
	if err != nil {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// rawStr passes over the string at d.i and returns its bytes, with
// unescape unescaped in place; otherwise only checked.
func (d *deviceDecoder) rawStr(unescape bool) ([]byte, error) {
	d.i++ // '"'
	start := d.i
	w := -1 // where unescaped bytes go, once an escape has been met
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			end := d.i
			d.i++
			if w < 0 {
				return d.b[start:end], nil
			}
			return d.b[start:w], nil
		case c == '\\':
			if !unescape {
				if _, err := d.escape(nil); err != nil {
					return nil, err
				}
				continue
			}
			if w < 0 {
				w = d.i
			}
			n, err := d.escape(d.b[w:])
			if err != nil {
				return nil, err
			}
			w += n
			continue
		case c < 0x20:
			return nil, d.syntax("control character in a string; escape it")
		case c < utf8.RuneSelf:
			d.i++
			if w >= 0 {
				d.b[w] = c
				w++
			}
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, d.syntax("invalid UTF-8 in a string; send UTF-8")
			}
			if w >= 0 {
				copy(d.b[w:], d.b[d.i:d.i+size])
				w += size
			}
			d.i += size
		}
	}
	return nil, d.syntax("unterminated string")
}

// escape decodes the escape at d.i into out, unless out is nil, and
// returns how many bytes it wrote, never more than it read. Unpaired
// surrogates become U+FFFD, as encoding/json has them.
func (d *deviceDecoder) escape(out []byte) (int, error) {
	if d.i+1 >= len(d.b) {
		return 0, d.syntax("unterminated escape")
	}
	var r rune
	switch c := d.b[d.i+1]; c {
	case '"', '\\', '/':
		r = rune(c)
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		u, ok := hex4(d.b[d.i+2:])
		if !ok {
			return 0, d.syntax(`expected four hex digits after \u`)
		}
		d.i += 6
		if 0xD800 <= u && u < 0xE000 {
			r = utf8.RuneError
			if u < 0xDC00 && len(d.b)-d.i >= 6 && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
				if lo, ok := hex4(d.b[d.i+2:]); ok && 0xDC00 <= lo && lo < 0xE000 {
					r = (u-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					d.i += 6
				}
			}
		} else {
			r = u
		}
		if out == nil {
			return 0, nil
		}
		return utf8.EncodeRune(out, r), nil
	default:
		return 0, d.syntax("invalid escape in a string")
	}
	d.i += 2
	if out == nil {
		return 0, nil
	}
	out[0] = byte(r)
	return 1, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func (d *deviceDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek is the byte at d.i, or 0 at the end.
func (d *deviceDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *deviceDecoder) syntax(what string) error {
	return mds.Errorf(mds.EINVALID, "body is not valid JSON: %s at byte %d", what, d.i+1)
}

// foldKey writes key into buf as encoding/json compares member names:
// ASCII letters, and the two non-ASCII runes that fold to letters of our
// names (the Kelvin sign to k, long s to s), in lower case. A key that
// cannot be one of ours comes back empty. Switching on string() of the
// result does not allocate.
func foldKey(key []byte, buf *[16]byte) []byte {
	n := 0
	for i := 0; i < len(key); {
		if n == len(buf) {
			return nil
		}
		c := key[i]
		switch {
		case 'A' <= c && c <= 'Z':
			buf[n] = c + 'a' - 'A'
			i++
		case c < utf8.RuneSelf:
			buf[n] = c
			i++
		default:
			r, size := utf8.DecodeRune(key[i:])
			switch r {
			case '\u212A':
				buf[n] = 'k'
			case '\u017F':
				buf[n] = 's'
			default:
				return nil
			}
			i += size
		}
		n++
	}
	return buf[:n]
}

// jsonType names the JSON type of a value by its first byte.
func jsonType(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
