package storetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

// Remote configuration: namespace versions made by EditConfig, their
// bounds and races, gray changes delivered by config tasks and folded
// into a version when promoted without rules, and what a snapshot loads.

// configValue is a key of type typ whose value is written as raw JSON.
func configValue(typ mds.ConfigType, raw string) mds.ConfigKey {
	return mds.ConfigKey{Type: typ, Value: json.RawMessage(raw)}
}

// configString is a string key of value v.
func configString(v string) mds.ConfigKey {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return configValue(mds.ConfigString, string(raw))
}

// configBase is a pointer to version n, for ConfigEdit.Base.
func configBase(n int64) *int64 { return &n }

// configValues is ks as name → value as stored, to compare.
func configValues(ks mds.ConfigKeys) map[string]string {
	out := map[string]string{}
	for name, k := range ks {
		out[name] = string(k.Value)
	}
	return out
}

// mustEditConfig writes edits to app as alice, failing the test on error.
func mustEditConfig(t testing.TB, s mds.Store, appID int64, message string, edits ...mds.ConfigEdit) []*mds.ConfigVersion {
	t.Helper()
	vs, err := s.EditConfig(ctx(), appID, "alice", message, edits)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// currentConfigValues is the values of the current version of app's
// namespace ns, or nil when it has none.
func currentConfigValues(t testing.TB, s mds.Store, appID int64, ns string) map[string]string {
	t.Helper()
	v, err := s.FindConfigVersion(ctx(), appID, ns, 0)
	if mds.ErrorCode(err) == mds.ENOTFOUND {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return configValues(v.Keys)
}

// configNumbers lists the version numbers of app's namespace ns on page p.
func configNumbers(t testing.TB, s mds.Store, appID int64, ns string, p mds.Page) []int64 {
	t.Helper()
	list, err := s.ListConfigVersions(ctx(), appID, ns, p)
	if err != nil {
		t.Fatal(err)
	}
	out := []int64{}
	for _, v := range list {
		out = append(out, v.Number)
	}
	return out
}

// appRevision is the revision of app slug.
func appRevision(t testing.TB, s mds.Store, slug string) int64 {
	t.Helper()
	a, err := s.FindApp(ctx(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return a.Revision
}

// manyConfigKeys is n integer keys named prefix0, prefix1…
func manyConfigKeys(prefix string, n int) mds.ConfigKeys {
	ks := mds.ConfigKeys{}
	for i := range n {
		ks[prefix+strconv.Itoa(i)] = configValue(mds.ConfigInteger, strconv.Itoa(i))
	}
	return ks
}

// mustConfigChange stores a gray change of app's namespace ns written
// against version base.
func mustConfigChange(t testing.TB, s mds.Store, app *mds.App, ns string, base int64, set mds.ConfigKeys, del []string, message string) *mds.Artifact {
	t.Helper()
	a := &mds.Artifact{AppID: app.ID, Kind: mds.KindConfig, Version: strconv.FormatInt(base, 10), CreatedBy: "test",
		Spec: &mds.ConfigSpec{Namespace: ns, Base: base, Set: set, Delete: del, Message: message}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

// newConfigTask returns a valid draft config task delivering a with
// targeting tg (a 10% rollout when tg is empty), not stored.
func newConfigTask(t testing.TB, a *mds.Artifact, tg mds.Targeting) *mds.Task {
	t.Helper()
	if !tg.HasGates() && !tg.HasRules() {
		tg.Rollout = &mds.Rollout{Percent: 10}
	}
	task := &mds.Task{AppID: a.AppID, Kind: mds.KindConfig, ArtifactID: a.ID, Policy: &mds.ConfigPolicy{}, Targeting: tg}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	return task
}

// liveConfigTasks counts app's live config tasks.
func liveConfigTasks(t testing.TB, s mds.Store, appID int64) int {
	t.Helper()
	list, err := s.ListTasks(ctx(), appID, mds.StatusLive, mds.Page{Limit: mds.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range list {
		if task.Kind == mds.KindConfig {
			n++
		}
	}
	return n
}

// testConfigVersions: the first edit of a namespace makes version 1, by
// its actor with its message, its values stored canonical; later edits
// make 2, 3… with sets, deletes and replaces applied; an edit that
// changes nothing makes no version and leaves every revision alone; the
// versions list newest first, without keys, page by page.
func testConfigVersions(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	rev := revision(t, s)
	before := time.Now().Add(-time.Millisecond)
	vs := mustEditConfig(t, s, a.ID, "first flags", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{
		"new_flow.enabled": configValue(mds.ConfigBoolean, "true"),
		"retries":          configValue(mds.ConfigInteger, "1e2"),
		"ratio":            configValue(mds.ConfigFloat, "0.50"),
		"banner":           configValue(mds.ConfigJSON, ` {"b": 1, "a": [1.10, "x"]} `),
		"title":            configString("Hello"),
	}})
	after := time.Now().Add(time.Millisecond)
	want := map[string]string{"new_flow.enabled": "true", "retries": "100", "ratio": "0.5", "banner": `{"a":[1.10,"x"],"b":1}`, "title": `"Hello"`}
	if len(vs) != 1 {
		t.Fatalf("the first edit made %d versions, want 1", len(vs))
	}
	v := vs[0]
	if v.Number != 1 || v.Namespace != "checkout" || v.AppID != a.ID || v.KeyCount != 5 || v.Message != "first flags" || v.CreatedBy != "alice" ||
		v.CreatedAt.Before(before) || v.CreatedAt.After(after) || v.Restores != 0 || v.Promotes != 0 {
		t.Errorf("first version %+v; want number 1 of checkout, 5 keys, by alice, with its message, made now", v)
	}
	if got := configValues(v.Keys); !maps.Equal(got, want) {
		t.Errorf("EditConfig returned values %v, want them canonical: %v", got, want)
	}
	for _, n := range []int64{0, 1} {
		got, err := s.FindConfigVersion(ctx(), a.ID, "checkout", n)
		if err != nil {
			t.Fatal(err)
		}
		if got.Number != 1 || got.KeyCount != 5 || got.Message != "first flags" || got.CreatedBy != "alice" || !got.CreatedAt.Equal(v.CreatedAt) ||
			!maps.Equal(configValues(got.Keys), want) || got.Keys["retries"].Type != mds.ConfigInteger {
			t.Errorf("FindConfigVersion(%d) = %+v; want version 1 as stored, values canonical", n, got)
		}
	}
	if r := revision(t, s); r <= rev || appRevision(t, s, "shop") != r {
		t.Errorf("the first edit left the revision at %d (app %d, was %d)", r, appRevision(t, s, "shop"), rev)
	}

	// A later edit sets and deletes.
	vs = mustEditConfig(t, s, a.ID, "second", mds.ConfigEdit{Namespace: "checkout",
		Set:    mds.ConfigKeys{"retries": configValue(mds.ConfigInteger, "3"), "timeout": configValue(mds.ConfigFloat, "1.50")},
		Delete: []string{"banner", "title"}})
	want = map[string]string{"new_flow.enabled": "true", "retries": "3", "ratio": "0.5", "timeout": "1.5"}
	if len(vs) != 1 || vs[0].Number != 2 || vs[0].KeyCount != 4 || !maps.Equal(configValues(vs[0].Keys), want) {
		t.Fatalf("second edit made %+v; want version 2 with %v", vs, want)
	}
	if got := currentConfigValues(t, s, a.ID, "checkout"); !maps.Equal(got, want) {
		t.Errorf("current keys %v, want %v", got, want)
	}

	// Edits that change nothing: the same value however written, a
	// delete of a key that is not there.
	rev, appRev := revision(t, s), appRevision(t, s, "shop")
	for _, e := range []mds.ConfigEdit{
		{Namespace: "checkout", Set: mds.ConfigKeys{"retries": configValue(mds.ConfigInteger, "3.0")}},
		{Namespace: "checkout", Delete: []string{"missing"}},
		{Namespace: "checkout", Set: mds.ConfigKeys{"ratio": configValue(mds.ConfigFloat, "5e-1")}, Delete: []string{"banner"}},
		{Namespace: "search", Delete: []string{"x"}}, // a namespace without versions
	} {
		vs, err := s.EditConfig(ctx(), a.ID, "alice", "nothing", []mds.ConfigEdit{e})
		if err != nil || len(vs) != 0 {
			t.Errorf("edit %+v that changes nothing made %v, %v; want no version", e, vs, err)
		}
	}
	if r, ar := revision(t, s), appRevision(t, s, "shop"); r != rev || ar != appRev {
		t.Errorf("edits that changed nothing moved the revision %d→%d (app %d→%d)", rev, r, appRev, ar)
	}
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("versions %v after edits that changed nothing, want [2 1]", got)
	}
	_, err := s.FindConfigVersion(ctx(), a.ID, "search", 0)
	wantCode(t, err, mds.ENOTFOUND)

	// Replace deletes what Set lacks.
	vs = mustEditConfig(t, s, a.ID, "replace", mds.ConfigEdit{Namespace: "checkout", Replace: true,
		Set: mds.ConfigKeys{"retries": configValue(mds.ConfigInteger, "3"), "mode": configString("fast")}})
	want = map[string]string{"retries": "3", "mode": `"fast"`}
	if len(vs) != 1 || vs[0].Number != 3 || !maps.Equal(currentConfigValues(t, s, a.ID, "checkout"), want) {
		t.Errorf("replace made %+v, keys now %v; want version 3 with %v", vs, currentConfigValues(t, s, a.ID, "checkout"), want)
	}
	if r := revision(t, s); r <= rev || appRevision(t, s, "shop") != r {
		t.Errorf("a real edit left the revision at %d (app %d, was %d)", r, appRevision(t, s, "shop"), rev)
	}
	// A replace with exactly the current keys changes nothing.
	if vs, err := s.EditConfig(ctx(), a.ID, "alice", "same", []mds.ConfigEdit{{Namespace: "checkout", Replace: true,
		Set: mds.ConfigKeys{"retries": configValue(mds.ConfigInteger, "3"), "mode": configString("fast")}}}); err != nil || len(vs) != 0 {
		t.Errorf("replacing the keys with themselves made %v, %v", vs, err)
	}

	// One write edits two namespaces.
	rev = revision(t, s)
	vs = mustEditConfig(t, s, a.ID, "two", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"mode": configString("slow")}},
		mds.ConfigEdit{Namespace: "search", Set: mds.ConfigKeys{"engine": configString("v2")}})
	if len(vs) != 2 || revision(t, s) <= rev {
		t.Fatalf("a write of two namespaces made %+v (revision %d, was %d)", vs, revision(t, s), rev)
	}
	byNS := map[string]int64{}
	for _, v := range vs {
		byNS[v.Namespace] = v.Number
	}
	if byNS["checkout"] != 4 || byNS["search"] != 1 {
		t.Errorf("a write of two namespaces made versions %v, want checkout 4 and search 1", byNS)
	}
	mustEditConfig(t, s, a.ID, "fifth", mds.ConfigEdit{Namespace: "checkout", Delete: []string{"mode"}})

	// Newest first, without keys, page by page.
	list, err := s.ListConfigVersions(ctx(), a.ID, "checkout", mds.Page{})
	if err != nil {
		t.Fatal(err)
	}
	counts := []int{}
	for _, v := range list {
		counts = append(counts, v.KeyCount)
		if v.Keys != nil || v.Namespace != "checkout" || v.CreatedBy != "alice" {
			t.Errorf("listed version %+v; want it without its keys", v)
		}
	}
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{5, 4, 3, 2, 1}) || !slices.Equal(counts, []int{1, 2, 2, 4, 5}) {
		t.Errorf("versions %v with key counts %v; want [5 4 3 2 1] with [1 2 2 4 5]", got, counts)
	}
	for _, c := range []struct {
		p    mds.Page
		want []int64
	}{
		{mds.Page{Limit: 2}, []int64{5, 4}},
		{mds.Page{After: "4", Limit: 2}, []int64{3, 2}},
		{mds.Page{After: "2", Limit: 2}, []int64{1}},
		{mds.Page{After: "1"}, []int64{}},
	} {
		if got := configNumbers(t, s, a.ID, "checkout", c.p); !slices.Equal(got, c.want) {
			t.Errorf("page %+v: %v, want %v", c.p, got, c.want)
		}
	}
	_, err = s.FindConfigVersion(ctx(), a.ID, "checkout", 6)
	wantCode(t, err, mds.ENOTFOUND)
	cur, err := s.CurrentConfig(ctx(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 2 || cur[0].Namespace != "checkout" || cur[0].Number != 5 || cur[1].Namespace != "search" || cur[1].Number != 1 ||
		!maps.Equal(configValues(cur[0].Keys), map[string]string{"retries": "3"}) || !maps.Equal(configValues(cur[1].Keys), map[string]string{"engine": `"v2"`}) {
		t.Errorf("CurrentConfig = %v; want checkout 5 and search 1, with their keys", cur)
	}
}

// testConfigCanonical: a value is stored, read and compared as
// CheckConfigValue encodes it, byte for byte: "<", ">" and "&" stay one
// byte each (not \u003c…), in values written by an edit and in those a
// promotion takes in, so that setting a value again changes nothing.
func testConfigCanonical(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	set := func() mds.ConfigKeys {
		return mds.ConfigKeys{"title": configString("<b>Tom & Jerry</b>"), "page": configValue(mds.ConfigJSON, `{"html": "<p>"}`)}
	}
	want := map[string]string{"title": `"<b>Tom & Jerry</b>"`, "page": `{"html":"<p>"}`}
	vs := mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "home", Set: set()})
	if len(vs) != 1 || !maps.Equal(configValues(vs[0].Keys), want) {
		t.Fatalf("EditConfig made %+v; want values %v", vs, want)
	}
	if got := currentConfigValues(t, s, a.ID, "home"); !maps.Equal(got, want) {
		t.Errorf("values as stored %v, want them as CheckConfigValue encodes them, %v", got, want)
	}
	if vs, err := s.EditConfig(ctx(), a.ID, "alice", "again", []mds.ConfigEdit{{Namespace: "home", Set: set()}}); err != nil || len(vs) != 0 {
		t.Errorf("setting the same values again made %d versions, %v; want none", len(vs), err)
	}
	task := newConfigTask(t, mustConfigChange(t, s, a, "promo", 0, mds.ConfigKeys{"label": configString("a<b")}, nil, ""), mds.Targeting{})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(s, task, mds.ActionPromote); err != nil {
		t.Fatal(err)
	}
	if got := currentConfigValues(t, s, a.ID, "promo"); got["label"] != `"a<b"` {
		t.Errorf("the promoted value is %v, want %s", got, `"a<b"`)
	}
}

// testConfigBase: an edit made against the current version goes in; one
// made against an older version, or against none when there is one, is
// refused whole, writing nothing.
func testConfigBase(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	_, err := s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{{Namespace: "checkout", Base: configBase(3), Set: mds.ConfigKeys{"a": configString("x")}}})
	wantCode(t, err, mds.ECONFLICT)
	if vs := mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Base: configBase(0), Set: mds.ConfigKeys{"a": configString("1")}}); len(vs) != 1 || vs[0].Number != 1 {
		t.Fatalf("an edit against no version made %+v; want version 1", vs)
	}
	if vs := mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Base: configBase(1), Set: mds.ConfigKeys{"a": configString("2")}}); len(vs) != 1 || vs[0].Number != 2 {
		t.Fatalf("an edit against the current version made %+v; want version 2", vs)
	}
	rev := revision(t, s)
	for _, b := range []int64{1, 0, 3} {
		_, err := s.EditConfig(ctx(), a.ID, "alice", "stale", []mds.ConfigEdit{{Namespace: "checkout", Base: configBase(b), Set: mds.ConfigKeys{"a": configString("3")}}})
		wantCode(t, err, mds.ECONFLICT)
	}
	// Refused whole: the namespace whose base is right is not written
	// either.
	_, err = s.EditConfig(ctx(), a.ID, "alice", "stale", []mds.ConfigEdit{
		{Namespace: "search", Base: configBase(0), Set: mds.ConfigKeys{"q": configString("x")}},
		{Namespace: "checkout", Base: configBase(1), Set: mds.ConfigKeys{"a": configString("3")}},
	})
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "checkout")
	if got := currentConfigValues(t, s, a.ID, "checkout"); !maps.Equal(got, map[string]string{"a": `"2"`}) {
		t.Errorf("stale edits left checkout at %v", got)
	}
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("stale edits left versions %v, want [2 1]", got)
	}
	if got := currentConfigValues(t, s, a.ID, "search"); got != nil {
		t.Errorf("a write refused for a stale base wrote its other namespace: %v", got)
	}
	if revision(t, s) != rev {
		t.Errorf("refused edits moved the revision")
	}
}

// testConfigRestore: a rollback makes a new version that is a copy of
// the earlier one it names; history only grows.
func testConfigRestore(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	v1 := map[string]string{"a": "1", "b": `"x"`}
	mustEditConfig(t, s, a.ID, "one", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1"), "b": configString("x")}})
	mustEditConfig(t, s, a.ID, "two", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "2"), "c": configValue(mds.ConfigBoolean, "true")}})
	mustEditConfig(t, s, a.ID, "three", mds.ConfigEdit{Namespace: "checkout", Replace: true, Set: mds.ConfigKeys{"d": configString("y")}})
	rev := revision(t, s)
	vs, err := s.EditConfig(ctx(), a.ID, "bob", "roll back", []mds.ConfigEdit{{Namespace: "checkout", Restore: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Number != 4 || vs[0].Restores != 1 || vs[0].CreatedBy != "bob" || vs[0].Message != "roll back" || !maps.Equal(configValues(vs[0].Keys), v1) {
		t.Fatalf("restoring version 1 made %+v; want version 4, a copy of 1, restoring it", vs)
	}
	got, err := s.FindConfigVersion(ctx(), a.ID, "checkout", 0)
	if err != nil || got.Number != 4 || got.Restores != 1 || got.KeyCount != 2 || !maps.Equal(configValues(got.Keys), v1) {
		t.Errorf("current version %+v, %v; want 4, restoring 1, with its keys", got, err)
	}
	if revision(t, s) <= rev {
		t.Error("a rollback did not move the revision")
	}
	rev = revision(t, s)
	for _, c := range []struct {
		restore int64
		code    string
	}{{4, mds.ECONFLICT}, {9, mds.ENOTFOUND}} {
		_, err := s.EditConfig(ctx(), a.ID, "bob", "", []mds.ConfigEdit{{Namespace: "checkout", Restore: c.restore}})
		wantCode(t, err, c.code)
	}
	_, err = s.EditConfig(ctx(), a.ID, "bob", "", []mds.ConfigEdit{{Namespace: "search", Restore: 1}})
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.EditConfig(ctx(), a.ID, "bob", "", []mds.ConfigEdit{{Namespace: "checkout", Restore: 1, Set: mds.ConfigKeys{"a": configString("z")}}})
	wantCode(t, err, mds.EINVALID)
	_, err = s.EditConfig(ctx(), a.ID, "bob", "", []mds.ConfigEdit{{Namespace: "checkout", Restore: 2, Base: configBase(3)}})
	wantCode(t, err, mds.ECONFLICT)
	if revision(t, s) != rev {
		t.Error("refused rollbacks moved the revision")
	}
	// A rollback against the current version, of a rollback's source.
	vs = mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Restore: 2, Base: configBase(4)})
	if len(vs) != 1 || vs[0].Number != 5 || vs[0].Restores != 2 || !maps.Equal(configValues(vs[0].Keys), map[string]string{"a": "2", "b": `"x"`, "c": "true"}) {
		t.Errorf("restoring version 2 made %+v", vs)
	}
	// History only grows: every version is as it was made.
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{5, 4, 3, 2, 1}) {
		t.Errorf("versions %v, want [5 4 3 2 1]", got)
	}
	for n, want := range map[int64]map[string]string{1: v1, 3: {"d": `"y"`}, 4: v1} {
		if v, err := s.FindConfigVersion(ctx(), a.ID, "checkout", n); err != nil || !maps.Equal(configValues(v.Keys), want) {
			t.Errorf("version %d after rollbacks: %v, %v; want %v", n, v, err, want)
		}
	}
}

// testConfigBounds: a write after which the app would hold too many
// keys, or keys in too many namespaces, is refused whole; an emptied
// namespace holds none; a write edits a namespace once; names and values
// are checked.
func testConfigBounds(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	half := mds.MaxConfigKeys / 2
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "big", Set: manyConfigKeys("k", half)})
	rev := revision(t, s)
	// One key too many across two namespaces: neither is written, not
	// even the one that fits.
	_, err := s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{
		{Namespace: "small", Set: manyConfigKeys("s", 1)},
		{Namespace: "other", Set: manyConfigKeys("o", mds.MaxConfigKeys-half)},
	})
	wantCode(t, err, mds.EINVALID)
	for _, ns := range []string{"small", "other"} {
		_, err := s.FindConfigVersion(ctx(), a.ID, ns, 0)
		wantCode(t, err, mds.ENOTFOUND)
	}
	if revision(t, s) != rev {
		t.Error("a write refused for its keys moved the revision")
	}
	// Exactly the bound is fine; one more is not, unless a key goes.
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "other", Set: manyConfigKeys("o", mds.MaxConfigKeys-half)})
	_, err = s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{{Namespace: "small", Set: manyConfigKeys("s", 1)}})
	wantCode(t, err, mds.EINVALID)
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "small", Set: manyConfigKeys("s", 1)},
		mds.ConfigEdit{Namespace: "big", Delete: []string{"k0"}})
	_, err = s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{{Namespace: "big", Set: mds.ConfigKeys{"k0": configValue(mds.ConfigInteger, "0")}}})
	wantCode(t, err, mds.EINVALID)

	// Namespaces, in another app: the first app's keys are its own.
	b := MustCreateApp(t, s, "blog")
	edits := func(from, to int) []mds.ConfigEdit {
		var es []mds.ConfigEdit
		for i := from; i < to; i++ {
			es = append(es, mds.ConfigEdit{Namespace: fmt.Sprintf("ns%03d", i), Set: mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "true")}})
		}
		return es
	}
	_, err = s.EditConfig(ctx(), b.ID, "alice", "", edits(0, mds.MaxConfigNamespaces+1))
	wantCode(t, err, mds.EINVALID)
	if cur, err := s.CurrentConfig(ctx(), b.ID); err != nil || len(cur) != 0 {
		t.Fatalf("a write refused for its namespaces left %d of them, %v", len(cur), err)
	}
	if vs, err := s.EditConfig(ctx(), b.ID, "alice", "", edits(0, mds.MaxConfigNamespaces)); err != nil || len(vs) != mds.MaxConfigNamespaces {
		t.Fatalf("%d namespaces: %d versions, %v", mds.MaxConfigNamespaces, len(vs), err)
	}
	_, err = s.EditConfig(ctx(), b.ID, "alice", "", edits(mds.MaxConfigNamespaces, mds.MaxConfigNamespaces+1))
	wantCode(t, err, mds.EINVALID)
	// An emptied namespace holds no key, so another may take its place,
	// in the same write or a later one.
	vs := mustEditConfig(t, s, b.ID, "", mds.ConfigEdit{Namespace: "ns000", Delete: []string{"on"}},
		mds.ConfigEdit{Namespace: "extra", Set: mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "false")}})
	if len(vs) != 2 {
		t.Fatalf("emptying one namespace and filling another made %v", vs)
	}
	mustEditConfig(t, s, b.ID, "", mds.ConfigEdit{Namespace: "ns001", Replace: true})
	mustEditConfig(t, s, b.ID, "", mds.ConfigEdit{Namespace: "extra2", Set: mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "false")}})
	_, err = s.EditConfig(ctx(), b.ID, "alice", "", []mds.ConfigEdit{{Namespace: "ns000", Set: mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "true")}}})
	wantCode(t, err, mds.EINVALID)
	if v, err := s.FindConfigVersion(ctx(), b.ID, "ns000", 0); err != nil || v.Number != 2 || v.KeyCount != 0 {
		t.Errorf("the emptied namespace: %+v, %v; want version 2 without keys", v, err)
	}

	// Malformed writes.
	rev = revision(t, s)
	for name, es := range map[string][]mds.ConfigEdit{
		"one namespace twice": {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configString("x")}}, {Namespace: "checkout", Set: mds.ConfigKeys{"b": configString("y")}}},
		"bad key name":        {{Namespace: "checkout", Set: mds.ConfigKeys{"bad key": configString("x")}}},
		"key starting a dot":  {{Namespace: "checkout", Set: mds.ConfigKeys{".a": configString("x")}}},
		"bad delete":          {{Namespace: "checkout", Delete: []string{"bad key"}}},
		"bad namespace":       {{Namespace: "Checkout", Set: mds.ConfigKeys{"a": configString("x")}}},
		"namespace with dot":  {{Namespace: "check.out", Set: mds.ConfigKeys{"a": configString("x")}}},
		"fraction integer":    {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1.5")}}},
		"unquoted string":     {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigString, "abc")}}},
		"quoted number":       {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, `"1"`)}}},
		"null boolean":        {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigBoolean, "null")}}},
		"unknown type":        {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue("date", `"x"`)}}},
		"duplicate member":    {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigJSON, `{"x":1,"x":2}`)}}},
		"set and deleted":     {{Namespace: "checkout", Set: mds.ConfigKeys{"a": configString("x")}, Delete: []string{"a"}}},
		"a good edit first":   {{Namespace: "fine", Set: mds.ConfigKeys{"a": configString("x")}}, {Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigFloat, "1e999")}}},
	} {
		_, err := s.EditConfig(ctx(), a.ID, "alice", "", es)
		if mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	for _, ns := range []string{"checkout", "fine"} {
		if _, err := s.FindConfigVersion(ctx(), a.ID, ns, 0); mds.ErrorCode(err) != mds.ENOTFOUND {
			t.Errorf("malformed writes made a version of %s: %v", ns, err)
		}
	}
	if revision(t, s) != rev {
		t.Error("malformed writes moved the revision")
	}
}

// testConfigRace: of writers racing against one base, exactly one wins;
// writers without a base all go in, numbered without gaps.
func testConfigRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"k": configValue(mds.ConfigInteger, "0")}})
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.EditConfig(ctx(), a.ID, fmt.Sprint("w", i), "", []mds.ConfigEdit{{Namespace: "checkout", Base: configBase(1),
				Set: mds.ConfigKeys{"k": configValue(mds.ConfigInteger, strconv.Itoa(i+1))}}})
		})
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch mds.ErrorCode(err) {
		case "":
			if won >= 0 {
				t.Errorf("writers %d and %d both won against base 1", won, i)
			}
			won = i
		case mds.ECONFLICT:
		default:
			t.Errorf("racing edit %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no racing edit against base 1 won")
	}
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("after racing edits against base 1: versions %v, want [2 1]", got)
	}
	if got := currentConfigValues(t, s, a.ID, "checkout"); got["k"] != strconv.Itoa(won+1) {
		t.Errorf("current value %v, want the winner's %d", got, won+1)
	}

	// Without a base every writer goes in, each over the one before.
	start = make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{{Namespace: "race",
				Set: mds.ConfigKeys{fmt.Sprint("k", i): configValue(mds.ConfigInteger, strconv.Itoa(i))}}})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("racing edit %d without a base: %v", i, err)
		}
	}
	want := []int64{}
	for i := n; i > 0; i-- {
		want = append(want, int64(i))
	}
	if got := configNumbers(t, s, a.ID, "race", mds.Page{}); !slices.Equal(got, want) {
		t.Errorf("racing edits without a base made versions %v, want %v", got, want)
	}
	list, _ := s.ListConfigVersions(ctx(), a.ID, "race", mds.Page{})
	for _, v := range list {
		if v.KeyCount != int(v.Number) {
			t.Errorf("version %d holds %d keys; each edit adds one to the one before", v.Number, v.KeyCount)
		}
	}
	if got := currentConfigValues(t, s, a.ID, "race"); len(got) != n {
		t.Errorf("after %d racing edits the namespace holds %v, want every edit's key", n, got)
	}
}

// testConfigLiveCap: an app has at most MaxLiveConfigChanges config
// tasks live, however they go live (created live, released, resumed) and
// however releases race; paused ones, other kinds and other apps do not
// count.
func testConfigLiveCap(t *testing.T, s mds.Store) {
	a, b := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}})
	change := mustConfigChange(t, s, a, "checkout", 1, mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "2")}, nil, "raise a")
	var live []*mds.Task
	for range mds.MaxLiveConfigChanges - 1 {
		task := newConfigTask(t, change, mds.Targeting{})
		task.Status = mds.StatusLive
		if err := s.CreateTask(ctx(), task, "tester"); err != nil {
			t.Fatal(err)
		}
		live = append(live, task)
	}
	// Races of releases, one at the last free place each: a round
	// that lets two in fails, and an interleaving that would is not
	// certain in one round. Each round's winner is stopped but the last's.
	const n, rounds = 8, 4
	var rest []*mds.Task
	for round := range rounds {
		drafts := make([]*mds.Task, n)
		for i := range drafts {
			drafts[i] = newConfigTask(t, change, mds.Targeting{})
			if err := s.CreateTask(ctx(), drafts[i], "tester"); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, task := range drafts {
			wg.Go(func() {
				<-start
				_, errs[i] = apply(s, task, mds.ActionRelease)
			})
		}
		close(start)
		wg.Wait()
		var winners []*mds.Task
		rest = nil
		for i, err := range errs {
			switch mds.ErrorCode(err) {
			case "":
				winners = append(winners, drafts[i])
			case mds.ECONFLICT:
				rest = append(rest, drafts[i])
			default:
				t.Errorf("racing release %d: %v", i, err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d racing releases with %d live succeeded; want exactly 1", round, len(winners), n, mds.MaxLiveConfigChanges-1)
		}
		if got := liveConfigTasks(t, s, a.ID); got != mds.MaxLiveConfigChanges {
			t.Fatalf("round %d: %d config tasks live, want %d", round, got, mds.MaxLiveConfigChanges)
		}
		if round < rounds-1 {
			if _, err := apply(s, winners[0], mds.ActionStop); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Full: created live, released, resumed, all refused.
	extra := newConfigTask(t, change, mds.Targeting{})
	extra.Status = mds.StatusLive
	wantCode(t, s.CreateTask(ctx(), extra, "tester"), mds.ECONFLICT)
	if all, _ := s.ListTasks(ctx(), a.ID, "", mds.Page{Limit: mds.MaxPageLimit}); len(all) != mds.MaxLiveConfigChanges-1+rounds*n {
		t.Errorf("a task refused at creation was stored: %d tasks", len(all))
	}
	_, err := apply(s, rest[0], mds.ActionRelease)
	wantCode(t, err, mds.ECONFLICT)
	if got, _ := s.FindTask(ctx(), a.ID, rest[0].ID); got.Status != mds.StatusDraft {
		t.Errorf("a refused release left the task %s", got.Status)
	}
	// A paused task does not count, but resuming it is going live again.
	if _, err := apply(s, live[0], mds.ActionPause); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(s, rest[0], mds.ActionRelease); err != nil {
		t.Errorf("releasing with one paused: %v", err)
	}
	_, err = apply(s, live[0], mds.ActionResume)
	wantCode(t, err, mds.ECONFLICT)
	// Other kinds, and other apps, have their own room.
	up := NewTask(t, MustCreatePackage(t, s, a, "2.0"), mds.Targeting{})
	up.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), up, "tester"); err != nil {
		t.Errorf("an upgrade task with the config tasks full: %v", err)
	}
	mustEditConfig(t, s, b.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}})
	other := newConfigTask(t, mustConfigChange(t, s, b, "checkout", 1, mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "3")}, nil, ""), mds.Targeting{})
	other.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), other, "tester"); err != nil {
		t.Errorf("another app's config task with shop's full: %v", err)
	}
	// Stopping one makes room.
	if _, err := apply(s, live[1], mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(s, rest[1], mds.ActionRelease); err != nil {
		t.Errorf("releasing after a stop: %v", err)
	}
	if got := liveConfigTasks(t, s, a.ID); got != mds.MaxLiveConfigChanges {
		t.Errorf("%d config tasks live at the end, want %d", got, mds.MaxLiveConfigChanges)
	}
}

// testConfigPromote: promoting a gray change without rules stops its task
// and makes the change the namespace's next version, over the current
// version (not the one it was written against), naming the task; with
// rules it becomes official and stays live, making no version. A
// promotion the bounds refuse changes nothing.
func testConfigPromote(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	mustEditConfig(t, s, a.ID, "one", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{
		"a": configValue(mds.ConfigInteger, "1"), "b": configString("x"), "c": configValue(mds.ConfigBoolean, "true")}})
	change := mustConfigChange(t, s, a, "checkout", 1,
		mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "2.0"), "d": configString("new")}, []string{"c"}, "raise a")
	task := newConfigTask(t, change, mds.Targeting{})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	// The namespace moves on after the change was written.
	mustEditConfig(t, s, a.ID, "two", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"b": configString("y"), "e": configValue(mds.ConfigFloat, "2.5")}})
	rev := revision(t, s)
	got, err := apply(s, task, mds.ActionPromote)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != mds.StatusStopped || got.Stage != mds.StageOfficial || got.Targeting.HasGates() {
		t.Errorf("promoted without rules: %s %s %+v; want stopped, official, without gates", got.Status, got.Stage, got.Targeting)
	}
	if stored, _ := s.FindTask(ctx(), a.ID, task.ID); stored.Status != mds.StatusStopped {
		t.Errorf("the stored task is %s, want stopped", stored.Status)
	}
	if h := history(t, s, task, mds.Page{}); h != "[created:draft release:live promote:stopped]" {
		t.Errorf("history %s", h)
	}
	v, err := s.FindConfigVersion(ctx(), a.ID, "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "2", "b": `"y"`, "d": `"new"`, "e": "2.5"}
	if v.Number != 3 || v.Promotes != task.ID || v.Restores != 0 || v.CreatedBy != "tester" || v.KeyCount != 4 || !maps.Equal(configValues(v.Keys), want) {
		t.Errorf("the promotion made %+v; want version 3 promoting task %d by tester, keys %v (the change over version 2)", v, task.ID, want)
	}
	if !strings.Contains(v.Message, "task "+strconv.FormatInt(task.ID, 10)) {
		t.Errorf("version message %q does not name task %d", v.Message, task.ID)
	}
	if r := revision(t, s); r <= rev || appRevision(t, s, "shop") != r {
		t.Errorf("the promotion left the revision at %d (app %d, was %d)", r, appRevision(t, s, "shop"), rev)
	}
	if set, err := s.LoadLive(ctx(), 0); err != nil || len(set.Tasks) != 0 || len(set.Config) != 1 || set.Config[0].Number != 3 {
		t.Errorf("after the promotion LoadLive has tasks %v and config %v, %v; want no task and version 3", set.Tasks, set.Config, err)
	}
	_, err = apply(s, task, mds.ActionPromote)
	wantCode(t, err, mds.ECONFLICT)
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{3, 2, 1}) {
		t.Errorf("versions %v, want [3 2 1]", got)
	}

	// With rules, the change stays a task: official and live.
	ruled := newConfigTask(t, mustConfigChange(t, s, a, "checkout", 3, mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "5")}, nil, "android only"),
		mds.Targeting{Rules: []mds.Rule{{Field: mds.FieldPlatform, Operator: mds.OpIn, Values: []string{"android"}}}, Rollout: &mds.Rollout{Percent: 5}})
	ruled.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), ruled, "tester"); err != nil {
		t.Fatal(err)
	}
	got, err = apply(s, ruled, mds.ActionPromote)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != mds.StatusLive || got.Stage != mds.StageOfficial || got.Targeting.HasGates() || !got.Targeting.HasRules() {
		t.Errorf("promoted with rules: %s %s %+v; want live, official, with its rules", got.Status, got.Stage, got.Targeting)
	}
	if v, err := s.FindConfigVersion(ctx(), a.ID, "checkout", 0); err != nil || v.Number != 3 || string(v.Keys["a"].Value) != "2" {
		t.Errorf("a promotion with rules made a version: %+v, %v", v, err)
	}
	if set, err := s.LoadLive(ctx(), 0); err != nil || len(set.Tasks) != 1 || set.Tasks[0].ID != ruled.ID || set.Tasks[0].Stage != mds.StageOfficial {
		t.Errorf("LoadLive tasks %v, %v; want the ruled task, official", set.Tasks, err)
	}

	// A change the bounds would not hold is refused when it is released,
	// so that no device sees past them before it could be promoted.
	b := MustCreateApp(t, s, "blog")
	var full []mds.ConfigEdit
	for i := range mds.MaxConfigNamespaces {
		full = append(full, mds.ConfigEdit{Namespace: fmt.Sprintf("ns%03d", i), Set: mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "true")}})
	}
	mustEditConfig(t, s, b.ID, "", full...)
	over := newConfigTask(t, mustConfigChange(t, s, b, "one_more", 0, mds.ConfigKeys{"on": configValue(mds.ConfigBoolean, "true")}, nil, ""), mds.Targeting{})
	rev = revision(t, s)
	over.Status = mds.StatusLive
	wantCode(t, s.CreateTask(ctx(), over, "tester"), mds.EINVALID)
	if revision(t, s) != rev {
		t.Error("a refused release moved the revision")
	}
	// Once a namespace is emptied, it goes in, and its promotion makes
	// version 1 of a namespace the change was written without a version of.
	mustEditConfig(t, s, b.ID, "", mds.ConfigEdit{Namespace: "ns000", Replace: true})
	over.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), over, "tester"); err != nil {
		t.Fatal(err)
	}
	if got, err := apply(s, over, mds.ActionPromote); err != nil || got.Status != mds.StatusStopped {
		t.Fatalf("promoting after room was made: %+v, %v", got, err)
	}
	if v, err := s.FindConfigVersion(ctx(), b.ID, "one_more", 0); err != nil || v.Number != 1 || v.Promotes != over.ID {
		t.Errorf("the promotion made %+v, %v; want version 1 promoting task %d", v, err, over.ID)
	}

	// Deleting the promoted task keeps its version, which no longer
	// names it by ID but still does in its message.
	if err := s.DeleteTask(ctx(), a.ID, task.ID); err != nil {
		t.Fatal(err)
	}
	if v, err := s.FindConfigVersion(ctx(), a.ID, "checkout", 3); err != nil || v.Promotes != 0 || !strings.Contains(v.Message, strconv.FormatInt(task.ID, 10)) ||
		!maps.Equal(configValues(v.Keys), want) {
		t.Errorf("after deleting the promoted task, its version is %+v, %v", v, err)
	}
}

// testConfigLive: a snapshot's load holds the current version of every
// namespace that holds a key, of every app or, since a revision, of the
// apps that changed.
func testConfigLive(t *testing.T, s mds.Store) {
	shop, blog := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}},
		mds.ConfigEdit{Namespace: "search", Set: mds.ConfigKeys{"q": configString("x")}},
		mds.ConfigEdit{Namespace: "gone", Set: mds.ConfigKeys{"x": configString("x")}})
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"b": configValue(mds.ConfigBoolean, "true")}},
		mds.ConfigEdit{Namespace: "gone", Delete: []string{"x"}})
	mustEditConfig(t, s, blog.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"z": configString("z")}})
	type row struct {
		app    int64
		ns     string
		number int64
		keys   int
	}
	rows := func(set *mds.LiveSet) []row {
		var out []row
		for _, v := range set.Config {
			if len(v.Keys) != v.KeyCount {
				t.Errorf("live version %s %d carries %d keys of %d", v.Namespace, v.Number, len(v.Keys), v.KeyCount)
			}
			out = append(out, row{v.AppID, v.Namespace, v.Number, len(v.Keys)})
		}
		slices.SortFunc(out, func(x, y row) int {
			if x.app != y.app {
				return int(x.app - y.app)
			}
			return strings.Compare(x.ns, y.ns)
		})
		return out
	}
	set, err := s.LoadLive(ctx(), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{shop.ID, "checkout", 2, 2}, {shop.ID, "search", 1, 1}, {blog.ID, "checkout", 1, 1}}
	slices.SortFunc(want, func(x, y row) int {
		if x.app != y.app {
			return int(x.app - y.app)
		}
		return strings.Compare(x.ns, y.ns)
	})
	if got := rows(set); !set.Full || !slices.Equal(got, want) {
		t.Errorf("full load: config %v, want %v (no emptied namespace)", got, want)
	}

	since := revision(t, s)
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "7")}})
	set, err = s.LoadLive(ctx(), since)
	if err != nil {
		t.Fatal(err)
	}
	want = []row{{shop.ID, "checkout", 3, 2}, {shop.ID, "search", 1, 1}}
	if got := rows(set); set.Full || !slices.Equal(set.Changed, []int64{shop.ID}) || len(set.Apps) != 1 || set.Apps[0].ID != shop.ID || !slices.Equal(got, want) {
		t.Errorf("load since %d: full %v, changed %v, config %v; want shop alone with %v", since, set.Full, set.Changed, got, want)
	}
	for _, v := range set.Config {
		if v.Namespace == "checkout" && string(v.Keys["a"].Value) != "7" {
			t.Errorf("the loaded version holds %s, want the edit's 7", v.Keys["a"].Value)
		}
	}
	// Emptying a namespace takes it out of the next load.
	since = revision(t, s)
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "search", Replace: true})
	set, err = s.LoadLive(ctx(), since)
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(set); !slices.Equal(got, []row{{shop.ID, "checkout", 3, 2}}) {
		t.Errorf("after emptying search: config %v, want checkout alone", got)
	}
	// A write that changes nothing loads nothing.
	since = revision(t, s)
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "search", Delete: []string{"q"}})
	if set, err := s.LoadLive(ctx(), since); err != nil || set.Full || len(set.Changed) != 0 || len(set.Config) != 0 {
		t.Errorf("a write that changed nothing: %+v, %v; want nothing to load", set, err)
	}
}

// testConfigDeleteApp: an app deletes with its versions, rollbacks and
// promotions among them; another app's stay.
func testConfigDeleteApp(t *testing.T, s mds.Store) {
	a, keep := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}})
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "2")}})
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Restore: 1})
	task := newConfigTask(t, mustConfigChange(t, s, a, "checkout", 3, mds.ConfigKeys{"b": configString("x")}, nil, ""), mds.Targeting{})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	if got, err := apply(s, task, mds.ActionPromote); err != nil || got.Status != mds.StatusStopped {
		t.Fatalf("promote: %+v, %v", got, err)
	}
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "checkout", Restore: 2})
	mustEditConfig(t, s, keep.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"z": configString("z")}})
	if got := configNumbers(t, s, a.ID, "checkout", mds.Page{}); !slices.Equal(got, []int64{5, 4, 3, 2, 1}) {
		t.Fatalf("versions before the delete %v", got)
	}
	if err := s.DeleteApp(ctx(), a.ID); err != nil {
		t.Fatalf("deleting an app with config versions: %v", err)
	}
	again := MustCreateApp(t, s, "shop")
	for _, id := range []int64{a.ID, again.ID} {
		_, err := s.FindConfigVersion(ctx(), id, "checkout", 0)
		wantCode(t, err, mds.ENOTFOUND)
		if cur, err := s.CurrentConfig(ctx(), id); err != nil || len(cur) != 0 {
			t.Errorf("app %d after the delete has config %v, %v", id, cur, err)
		}
	}
	if got := currentConfigValues(t, s, keep.ID, "checkout"); !maps.Equal(got, map[string]string{"z": `"z"`}) {
		t.Errorf("another app's config after the delete: %v", got)
	}
	if vs := mustEditConfig(t, s, again.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}}); len(vs) != 1 || vs[0].Number != 1 {
		t.Errorf("a new app of the same slug starts at %+v, want version 1", vs)
	}
	if set, err := s.LoadLive(ctx(), 0); err != nil || len(set.Config) != 2 {
		t.Errorf("LoadLive after the delete: config %v, %v; want blog's and the new shop's", set.Config, err)
	}
}

// testConfigScoped: an app's namespaces are its own: another app's ID
// reads none of them, and its versions, bases and rollbacks are numbered
// on their own.
func testConfigScoped(t *testing.T, s mds.Store) {
	shop, blog := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "1")}})
	mustEditConfig(t, s, shop.ID, "", mds.ConfigEdit{Namespace: "checkout", Set: mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "2")}})
	for _, n := range []int64{0, 1, 2} {
		_, err := s.FindConfigVersion(ctx(), blog.ID, "checkout", n)
		wantCode(t, err, mds.ENOTFOUND)
	}
	if list, err := s.ListConfigVersions(ctx(), blog.ID, "checkout", mds.Page{}); err != nil || len(list) != 0 {
		t.Errorf("blog lists shop's versions: %v, %v", list, err)
	}
	if cur, err := s.CurrentConfig(ctx(), blog.ID); err != nil || len(cur) != 0 {
		t.Errorf("blog's current config is shop's: %v, %v", cur, err)
	}
	_, err := s.EditConfig(ctx(), blog.ID, "alice", "", []mds.ConfigEdit{{Namespace: "checkout", Restore: 1}})
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.EditConfig(ctx(), blog.ID, "alice", "", []mds.ConfigEdit{{Namespace: "checkout", Base: configBase(2), Set: mds.ConfigKeys{"a": configString("x")}}})
	wantCode(t, err, mds.ECONFLICT)
	vs := mustEditConfig(t, s, blog.ID, "", mds.ConfigEdit{Namespace: "checkout", Base: configBase(0), Set: mds.ConfigKeys{"b": configString("x")}})
	if len(vs) != 1 || vs[0].Number != 1 || vs[0].AppID != blog.ID {
		t.Errorf("blog's first version of checkout: %+v; want its own version 1", vs)
	}
	if got := currentConfigValues(t, s, shop.ID, "checkout"); !maps.Equal(got, map[string]string{"a": "2"}) {
		t.Errorf("blog's edit changed shop's checkout: %v", got)
	}
	if got := currentConfigValues(t, s, blog.ID, "checkout"); !maps.Equal(got, map[string]string{"b": `"x"`}) {
		t.Errorf("blog's checkout holds %v; want its own key alone", got)
	}
	// Another app's gray change is not a task's to deliver.
	change := mustConfigChange(t, s, shop, "checkout", 2, mds.ConfigKeys{"a": configValue(mds.ConfigInteger, "3")}, nil, "")
	task := newConfigTask(t, change, mds.Targeting{})
	task.AppID = blog.ID
	wantCode(t, s.CreateTask(ctx(), task, "tester"), mds.ENOTFOUND)
	_, err = s.EditConfig(ctx(), 99999, "alice", "", []mds.ConfigEdit{{Namespace: "checkout", Set: mds.ConfigKeys{"a": configString("x")}}})
	if err == nil {
		t.Error("an edit of an app that does not exist went in")
	}
}

// testConfigFoldRefusals: a promotion that would not give every device
// what it promises is refused, writing nothing: one of a paused change,
// one whose keys an older live change also changes (its audience would
// keep the older value over the new version), and one of a key whose type
// or schema the namespace has changed since the change was written.
func testConfigFoldRefusals(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	mustEditConfig(t, s, a.ID, "one", mds.ConfigEdit{Namespace: "ui", Set: mds.ConfigKeys{"x": configValue(mds.ConfigInteger, "1"), "y": configString("a")}})
	live := func(set mds.ConfigKeys) *mds.Task {
		t.Helper()
		task := newConfigTask(t, mustConfigChange(t, s, a, "ui", 1, set, nil, ""), mds.Targeting{})
		task.Status = mds.StatusLive
		if err := s.CreateTask(ctx(), task, "tester"); err != nil {
			t.Fatal(err)
		}
		return task
	}
	older := live(mds.ConfigKeys{"x": configValue(mds.ConfigInteger, "2")})
	newer := live(mds.ConfigKeys{"x": configValue(mds.ConfigInteger, "3"), "y": configString("b")})
	unchanged := func(what string) {
		t.Helper()
		if got := configNumbers(t, s, a.ID, "ui", mds.Page{}); !slices.Equal(got, []int64{1}) && !slices.Equal(got, []int64{3, 2, 1}) {
			t.Errorf("%s: versions %v", what, got)
		}
		if got, _ := s.FindTask(ctx(), a.ID, newer.ID); got.Status.Finished() || got.Stage != mds.StageGray {
			t.Errorf("%s: the task is %s %s; want it as it was", what, got.Status, got.Stage)
		}
	}
	_, err := apply(s, newer, mds.ActionPromote)
	if wantCode(t, err, mds.ECONFLICT); err != nil && !strings.Contains(err.Error(), fmt.Sprintf("task %d", older.ID)) {
		t.Errorf("the refusal does not name the older task: %v", err)
	}
	unchanged("with an older change of x live")
	if _, err := apply(s, older, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(s, newer, mds.ActionPause); err != nil {
		t.Fatal(err)
	}
	_, err = apply(s, newer, mds.ActionPromote)
	wantCode(t, err, mds.ECONFLICT)
	unchanged("paused")
	if _, err := apply(s, newer, mds.ActionResume); err != nil {
		t.Fatal(err)
	}
	mustEditConfig(t, s, a.ID, "x as text", mds.ConfigEdit{Namespace: "ui", Set: mds.ConfigKeys{"x": configString("one")}})
	_, err = apply(s, newer, mds.ActionPromote)
	wantCode(t, err, mds.ECONFLICT)
	mustEditConfig(t, s, a.ID, "x a number again", mds.ConfigEdit{Namespace: "ui", Set: mds.ConfigKeys{"x": configValue(mds.ConfigInteger, "1")}})
	unchanged("after x changed type")
	if got, err := apply(s, newer, mds.ActionPromote); err != nil || got.Status != mds.StatusStopped {
		t.Fatalf("promoting once nothing stands in the way: %+v, %v", got, err)
	}
	if v := currentConfigValues(t, s, a.ID, "ui"); v["x"] != "3" || v["y"] != `"b"` {
		t.Errorf("after the promotion ui holds %v", v)
	}
}

// testConfigBytes: an app's current versions hold at most MaxConfigBytes
// of names, values and schemas together; a write past it is refused
// whole, and a version says its size.
func testConfigBytes(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	big := func(prefix string, n int) mds.ConfigKeys {
		ks := mds.ConfigKeys{}
		for i := range n {
			ks[fmt.Sprintf("%s%02d", prefix, i)] = configString(strings.Repeat("x", 60_000))
		}
		return ks
	}
	v := mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "a", Set: big("a", 40)})
	if want := 40 * (3 + 60_002); v[0].Size != want {
		t.Errorf("version size %d, want %d", v[0].Size, want)
	}
	rev := revision(t, s)
	_, err := s.EditConfig(ctx(), a.ID, "alice", "", []mds.ConfigEdit{{Namespace: "b", Set: big("b", 30)}})
	wantCode(t, err, mds.EINVALID)
	if _, err := s.FindConfigVersion(ctx(), a.ID, "b", 0); mds.ErrorCode(err) != mds.ENOTFOUND || revision(t, s) != rev {
		t.Errorf("a write past the bytes bound was kept: %v", err)
	}
	// Room made in the same write lets it in.
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "a", Replace: true, Set: big("a", 10)}, mds.ConfigEdit{Namespace: "b", Set: big("b", 30)})
}

// testConfigLiveBounds: releasing a gray change is refused when devices
// could then see more keys, or keys in more namespaces, than an app may
// hold, counting the keys its live changes add.
func testConfigLiveBounds(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	mustEditConfig(t, s, a.ID, "", mds.ConfigEdit{Namespace: "big", Set: manyConfigKeys("k", mds.MaxConfigKeys-10)})
	release := func(set mds.ConfigKeys) error {
		task := newConfigTask(t, mustConfigChange(t, s, a, "extra", 0, set, nil, ""), mds.Targeting{})
		task.Status = mds.StatusLive
		return s.CreateTask(ctx(), task, "tester")
	}
	if err := release(manyConfigKeys("a", 6)); err != nil {
		t.Fatal(err)
	}
	// The same keys again add nothing; new ones past the bound are refused.
	if err := release(manyConfigKeys("a", 6)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, release(manyConfigKeys("b", 5)), mds.EINVALID)
	if n := liveConfigTasks(t, s, a.ID); n != 2 {
		t.Errorf("%d changes live, want 2", n)
	}
	if err := release(manyConfigKeys("b", 4)); err != nil {
		t.Fatal(err)
	}
}
