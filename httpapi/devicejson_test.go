package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mds-dev/mds"
)

// decodeBoth decodes body with encoding/json and with the check decoder,
// which works on a copy, reusing d as a check does.
func decodeBoth(d *deviceDecoder, body []byte) (want, got mds.Device, wantErr, gotErr error) {
	wantErr = json.Unmarshal(body, &want)
	gotErr = d.decode(append([]byte(nil), body...), &got)
	return
}

var deviceBodies = []string{
	`{"app_key":"ak_1","platform":"android","app_version":"2.1.0","build":210,"device_id":"d-1","user_id":"u",` +
		`"model":"Pixel 9","brand":"Google","os_version":"15","network":"wifi","region":"CN-31","city":"上海",` +
		`"channel":"华为","language":"zh-CN","attributes":{"tier":"gold","a":null},"device_time":"2026-01-02T15:04:05+08:00",` +
		`"last_reminded":{"task_id":3,"at":"2026-01-01T00:00:00Z","extra":[1,{"x":null}]},"future":{"a":[true,false,-1.5e3]}}`,
	` { "APP_KEY" : "k" , "Device_ID":"\u0064\n\"\\\/\b\f\r\t\ud83d\ude00\ud800x\udc00" } `,
	`{"\u0061pp_key":"k","platform":null,"app_\u212aey":"kelvin","ſer_id":"x","attributes":{"a":"1"},"attributes":{"b":"2"}}`,
	`{"attributes":{"a":"1"},"attributes":null,"attributes":{"b":"2"}}`,
	`{"build":-0,"build":9223372036854775807}`,
	`{"build":9223372036854775808}`, `{"build":1.5}`, `{"build":1e2}`, `{"build":"1"}`, `{"build":01}`,
	`{"app_key":7}`, `{"platform":["android"]}`, `{"attributes":{"a":1}}`, `{"attributes":[]}`,
	`{"device_time":"2026-01-02"}`, `{"device_time":null}`, `{"device_time":5}`, `{"device_time":"2026-01-02T15:04:05\u005a"}`,
	`{"last_reminded":null}`, `{"last_reminded":"x"}`, `{"last_reminded":{"at":null,"task_id":null}}`,
	`{"hotpatch":{"patch_id":12,"patch_version":3,"x":[1]}}`, `{"hotpatch":null}`, `{"hotpatch":[1]}`,
	`{"Hotpatch":{"PATCH_ID":"12"}}`, `{"hotpatch":{"patch_id":1},"hotpatch":{"patch_version":2}}`,
	`{"offline":{"shop-home":"1.4.0","common":"2"},"attributes":{"a":"1"}}`, `{"Offline":{"a":"1"},"offline":{"b":"2"}}`,
	`{"offline":{"a":"1"},"offline":null,"offline":{"b":"2"}}`, `{"offline":{"a":1}}`, `{"offline":["a"]}`, `{"offline":{"a":null}}`,
	`null`, `[1]`, `"x"`, `1`, `true`, ``, ` `, `{`, `{"a"`, `{"a":}`, `{"a":1,}`, `{} {}`, `{}}`, `{}x`,
	`{"a":"` + "\x01" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":tru}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
	`{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
}

// TestDecodeDeviceAgreesWithEncodingJSON: the check decoder decodes what
// encoding/json decodes, to the same device, and refuses what it refuses.
func TestDecodeDeviceAgreesWithEncodingJSON(t *testing.T) {
	d := &deviceDecoder{attrs: map[string]string{}, offline: map[string]string{}}
	for _, body := range deviceBodies {
		want, got, wantErr, gotErr := decodeBoth(d, []byte(body))
		if (wantErr == nil) != (gotErr == nil) || wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%.80s:\n got %+v, %v\nwant %+v, %v", body, got, gotErr, want, wantErr)
		}
		if gotErr != nil && mds.ErrorCode(gotErr) != mds.EINVALID {
			t.Errorf("%.80s: error %v is not EINVALID", body, gotErr)
		}
	}
}

func TestDecodeDeviceRefusesBadUTF8(t *testing.T) {
	d := &deviceDecoder{attrs: map[string]string{}, offline: map[string]string{}}
	var dev mds.Device
	err := d.decode([]byte("{\"device_id\":\"\xff\"}"), &dev)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("a string that is not UTF-8: %v", err)
	}
}

// FuzzDecodeDevice holds the check decoder to encoding/json: on valid
// UTF-8 they agree on what is refused and on what is decoded; on anything
// else the decoder refuses or agrees; it never panics.
func FuzzDecodeDevice(f *testing.F) {
	for _, b := range deviceBodies {
		f.Add([]byte(b))
	}
	d := &deviceDecoder{attrs: map[string]string{}, offline: map[string]string{}}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, got, wantErr, gotErr := decodeBoth(d, body)
		if !utf8.Valid(body) && gotErr != nil {
			return
		}
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%q: encoding/json says %v, the decoder %v", body, wantErr, gotErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", body, got, want)
		}
	})
}
