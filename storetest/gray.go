package storetest

import (
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

func testRuleSets(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	rs := &mds.RuleSet{AppID: a.ID, Name: "east china", Rules: []mds.Rule{{Field: "region", Operator: mds.OpIn, Values: []string{"CN-31", "CN-32"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateRuleSet(ctx(), &mds.RuleSet{AppID: a.ID, Name: "east china", Rules: rs.Rules}), mds.ECONFLICT)
	rev := revision(t, s)
	rs.Rules = append(rs.Rules, mds.Rule{Field: "network", Operator: mds.OpIn, Values: []string{"wifi"}})
	if err := s.UpdateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	if revision(t, s) <= rev {
		t.Error("editing a rule set did not move the revision; tasks using it would not follow")
	}
	got, err := s.FindRuleSet(ctx(), a.ID, rs.ID)
	if err != nil || len(got.Rules) != 2 || got.Rules[1].Values[0] != "wifi" {
		t.Errorf("FindRuleSet = %+v, %v", got, err)
	}
	list, err := s.ListRuleSets(ctx(), a.ID, mds.Page{})
	if err != nil || len(list) != 1 {
		t.Errorf("ListRuleSets = %v, %v", list, err)
	}
	task := NewTask(t, MustCreatePackage(t, s, a, "2.0"), mds.Targeting{RuleSets: []int64{rs.ID}})
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteRuleSet(ctx(), a.ID, rs.ID), mds.ECONFLICT)
	if _, err := apply(s, task, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRuleSet(ctx(), a.ID, rs.ID); err != nil {
		t.Errorf("deleting a rule set only a stopped task uses: %v", err)
	}
	_, err = s.FindRuleSet(ctx(), a.ID, rs.ID)
	wantCode(t, err, mds.ENOTFOUND)
}

func entries(es ...string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func testWhitelists(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistDevices}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateWhitelist(ctx(), &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}), mds.ECONFLICT)
	v0 := w.Version
	const n = 1234
	big := make([]string, 0, n+2)
	for i := range n {
		big = append(big, fmt.Sprintf("device-%04d", i))
	}
	big = append(big, "device-0001", "re:^qa-")
	rev := revision(t, s)
	got, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries(big...))
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries != n+1 || got.Patterns != 1 || got.Version <= v0 || revision(t, s) <= rev {
		t.Errorf("after replace: %+v (revision %d→%d)", got, rev, revision(t, s))
	}
	got, err = s.EditWhitelist(ctx(), a.ID, w.ID, []string{"extra-1", "device-0002"}, []string{"device-0000", "nope"})
	if err != nil || got.Entries != n+1 {
		t.Errorf("after edit: %+v, %v; want %d entries", got, err, n+1)
	}
	page, err := s.WhitelistEntries(ctx(), a.ID, w.ID, "", 3)
	if err != nil || fmt.Sprint(page) != "[device-0001 device-0002 device-0003]" {
		t.Errorf("first page %v, %v", page, err)
	}
	page, err = s.WhitelistEntries(ctx(), a.ID, w.ID, "device-1233", 10)
	if err != nil || fmt.Sprint(page) != "[extra-1 re:^qa-]" {
		t.Errorf("last page %v, %v", page, err)
	}
	var loaded []string
	version, err := s.LoadWhitelist(ctx(), w.ID, func(e string) error { loaded = append(loaded, e); return nil })
	if err != nil || len(loaded) != n+1 || version != got.Version {
		t.Errorf("LoadWhitelist: %d entries, version %d (want %d), %v", len(loaded), version, got.Version, err)
	}
	list, err := s.ListWhitelists(ctx(), a.ID, mds.Page{})
	if err != nil || len(list) != 1 || list[0].Entries != n+1 {
		t.Errorf("ListWhitelists = %v, %v", list, err)
	}
	other := MustCreateApp(t, s, "blog")
	_, err = s.FindWhitelist(ctx(), other.ID, w.ID)
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.ReplaceWhitelist(ctx(), other.ID, w.ID, entries("x"))
	wantCode(t, err, mds.ENOTFOUND)

	patterns := make([]string, mds.MaxWhitelistPatterns+1)
	for i := range patterns {
		patterns[i] = fmt.Sprintf("re:^p%d$", i)
	}
	_, err = s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries(patterns...))
	wantCode(t, err, mds.EINVALID)
	if kept, _ := s.FindWhitelist(ctx(), a.ID, w.ID); kept.Entries != n+1 {
		t.Errorf("a refused replace changed the whitelist: %+v", kept)
	}
	if err := s.DeleteWhitelist(ctx(), a.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindWhitelist(ctx(), a.ID, w.ID)
	wantCode(t, err, mds.ENOTFOUND)
}

func testWhitelistAbort(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries("alice", "bob")); err != nil {
		t.Fatal(err)
	}
	// A bad line far into a large file: nothing of the new file may stay.
	broken := func(yield func(string, error) bool) {
		for i := range 2000 {
			if !yield(fmt.Sprintf("user-%d", i), nil) {
				return
			}
		}
		yield("", mds.Errorf(mds.EINVALID, "line 2001: bad entry"))
	}
	_, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, broken)
	wantCode(t, err, mds.EINVALID)
	got, _ := s.FindWhitelist(ctx(), a.ID, w.ID)
	page, _ := s.WhitelistEntries(ctx(), a.ID, w.ID, "", 10)
	if got.Entries != 2 || fmt.Sprint(page) != "[alice bob]" {
		t.Errorf("after a failed replace: %+v %v; want the old two entries", got, page)
	}
}

// testWhitelistConcurrent races edits and replaces of one whitelist: every
// change must move the version, and a replace must replace, not merge.
func testWhitelistConcurrent(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := s.EditWhitelist(ctx(), a.ID, w.ID, []string{fmt.Sprintf("edit-%d", i)}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := s.FindWhitelist(ctx(), a.ID, w.ID)
	if got.Version != w.Version+4 || got.Entries != 4 {
		t.Errorf("after 4 concurrent edits: version %d (want %d), %d entries", got.Version, w.Version+4, got.Entries)
	}
	file := func(prefix string) iter.Seq2[string, error] {
		return func(yield func(string, error) bool) {
			for i := range 1500 {
				if !yield(fmt.Sprintf("%s-%d", prefix, i), nil) {
					return
				}
			}
		}
	}
	for _, p := range []string{"a", "b"} {
		wg.Go(func() {
			if _, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, file(p)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ = s.FindWhitelist(ctx(), a.ID, w.ID)
	if got.Entries != 1500 {
		t.Errorf("two concurrent replaces left %d entries; one file of 1500 should win whole", got.Entries)
	}
}

// testWhitelistPatternCase: only a lowercase "re:" makes an entry a
// regular expression, on every database (SQLite's LIKE ignores case).
func testWhitelistPatternCase(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries("re:^qa-", "RE:upper", "Re:mixed", "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries != 4 || got.Patterns != 1 {
		t.Errorf("4 entries of which one lowercase re: pattern: got %d entries, %d patterns", got.Entries, got.Patterns)
	}
	got, err = s.EditWhitelist(ctx(), a.ID, w.ID, []string{"RE:x", "re:y"}, nil)
	if err != nil || got.Patterns != 2 {
		t.Errorf("after edit: %+v, %v; want 2 patterns", got, err)
	}
}

// farFuture is a window end that no test reaches.
var farFuture = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// WindowTask creates a draft gray task of app a whose one gate is a capped
// window of limit devices ending at end.
func WindowTask(t testing.TB, s mds.Store, a *mds.App, limit int, end time.Time) *mds.Task {
	t.Helper()
	task := NewTask(t, MustCreatePackage(t, s, a, "2.0"), mds.Targeting{Window: &mds.Window{Start: end.Add(-24 * time.Hour), End: end, Cap: limit}})
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	return task
}

// setWindow edits the task's window, as an operator would.
func setWindow(t testing.TB, s mds.Store, task *mds.Task, limit int, end time.Time) {
	t.Helper()
	_, err := s.UpdateTask(ctx(), task.AppID, task.ID, "tester", func(t *mds.Task) (string, error) {
		tg := t.Targeting
		tg.Window = &mds.Window{Start: end.Add(-24 * time.Hour), End: end, Cap: limit}
		return "targeting", t.SetTargeting(tg)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testAdmissions races many batches of distinct and repeated devices at one
// window: exactly its cap get in, repeats do not count twice, and the
// admitted list agrees. The cap is the store's: an asking node cannot
// widen it, and an edit of it counts at once.
func testAdmissions(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	const limit, devices, rounds = 10, 30, 3
	task := WindowTask(t, s, a, limit, farFuture)
	admit := func(ids ...string) ([]bool, error) {
		return s.Admit(ctx(), mds.Admission{TaskID: task.ID, Devices: ids, At: time.Now()})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	in := map[string]bool{}
	for r := range rounds {
		for d := 0; d < devices; d += 3 {
			wg.Go(func() {
				ids := []string{fmt.Sprintf("device-%02d", d), fmt.Sprintf("device-%02d", d+1), fmt.Sprintf("device-%02d", d+2)}
				ok, err := admit(ids...)
				if err != nil {
					t.Errorf("round %d: %v", r, err)
					return
				}
				mu.Lock()
				for i, id := range ids {
					if ok[i] {
						in[id] = true
					}
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if len(in) != limit {
		t.Fatalf("%d distinct devices admitted, want exactly %d", len(in), limit)
	}
	var admitted []string
	if err := s.Admitted(ctx(), task.ID, func(d string) error { admitted = append(admitted, d); return nil }); err != nil || len(admitted) != limit {
		t.Fatalf("Admitted = %v, %v", admitted, err)
	}
	for _, d := range admitted {
		if !in[d] {
			t.Errorf("store lists %s, which was refused", d)
		}
	}
	if ok, err := admit(admitted[0], "latecomer", admitted[1]); err != nil || fmt.Sprint(ok) != "[true false true]" {
		t.Errorf("admitted devices and a latecomer at a full window: %v, %v; want [true false true]", ok, err)
	}
	if in, n, err := s.AdmissionStatus(ctx(), task.ID, admitted[0]); err != nil || !in || n != limit {
		t.Errorf("AdmissionStatus(admitted) = %v, %d, %v; want true, %d", in, n, err, limit)
	}
	if in, n, err := s.AdmissionStatus(ctx(), task.ID, "latecomer"); err != nil || in || n != limit {
		t.Errorf("AdmissionStatus(refused) = %v, %d, %v; want false, %d", in, n, err, limit)
	}
	// Raising the cap lets more in, still counted exactly; lowering it
	// lets no one new in, and those in stay.
	setWindow(t, s, task, limit+1, farFuture)
	if ok, _ := admit("latecomer", "second-latecomer"); fmt.Sprint(ok) != "[true false]" {
		t.Errorf("a cap raised by one admitted %v; want only the first", ok)
	}
	setWindow(t, s, task, 2, farFuture)
	if ok, _ := admit("third-latecomer", admitted[0]); fmt.Sprint(ok) != "[false true]" {
		t.Errorf("a lowered cap: %v; want the newcomer out, the admitted device in", ok)
	}
	// A task without a window admits no one.
	plain := MustCreateTask(t, s, MustCreatePackage(t, s, a, "3.0"))
	if ok, err := s.Admit(ctx(), mds.Admission{TaskID: plain.ID, Devices: []string{"x"}, At: time.Now()}); err != nil || ok[0] {
		t.Errorf("a task without a window: %v, %v", ok, err)
	}
	_, err := s.Admit(ctx(), mds.Admission{TaskID: 99999, Devices: []string{"x"}})
	wantCode(t, err, mds.ENOTFOUND)
}

// testSealedWindow: once a window is sealed at its end, nothing more gets
// in while the window ends there or earlier, however late an admission
// arrives, even from a node that still thinks the window ends later;
// moving the end later opens it again.
func testSealedWindow(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	end := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	task := WindowTask(t, s, a, 100, end)
	admit := func(ids ...string) []bool {
		t.Helper()
		ok, err := s.Admit(ctx(), mds.Admission{TaskID: task.ID, Devices: ids, At: end.Add(-time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if ok := admit("early"); !ok[0] {
		t.Fatal("an open window refused its first device")
	}
	if err := s.SealWindow(ctx(), task.ID, end); err != nil {
		t.Fatal(err)
	}
	if ok := admit("early", "late"); fmt.Sprint(ok) != "[true false]" {
		t.Errorf("after the seal: %v; want the early device in and the late one out", ok)
	}
	setWindow(t, s, task, 100, end.Add(-time.Hour))
	if ok := admit("earlier-end"); ok[0] {
		t.Error("a window moved to end before the sealed end admitted a device")
	}
	// Sealing an earlier end does not undo a later seal.
	if err := s.SealWindow(ctx(), task.ID, end.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	setWindow(t, s, task, 100, end)
	if ok := admit("late"); ok[0] {
		t.Error("sealing an earlier end reopened the window")
	}
	setWindow(t, s, task, 100, end.Add(time.Hour))
	if ok := admit("late"); !ok[0] {
		t.Error("a window moved later stayed sealed")
	}
	wantCode(t, s.SealWindow(ctx(), 99999, end), mds.ENOTFOUND)
}

// testRuleSetsScopedByApp: deleting another app's rule set says nothing
// of it, in use or not.
func testRuleSetsScopedByApp(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "appa")
	b := MustCreateApp(t, s, "appb")
	rs := &mds.RuleSet{AppID: b.ID, Name: "secret", Rules: []mds.Rule{{Field: mds.FieldNetwork, Operator: mds.OpIn, Values: []string{"wifi"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	task := NewTask(t, MustCreatePackage(t, s, b, "2.0"), mds.Targeting{RuleSets: []int64{rs.ID}})
	if err := s.CreateTask(ctx(), task, "b"); err != nil {
		t.Fatal(err)
	}
	err := s.DeleteRuleSet(ctx(), a.ID, rs.ID)
	wantCode(t, err, mds.ENOTFOUND)
	if strings.Contains(err.Error(), "task") {
		t.Errorf("another app's delete learnt of its tasks: %v", err)
	}
	if _, err := s.FindRuleSet(ctx(), b.ID, rs.ID); err != nil {
		t.Errorf("the rule set is gone: %v", err)
	}
}
