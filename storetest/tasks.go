package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

func testTasks(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	p := MustCreatePackage(t, s, a, "2.0")
	rev := revision(t, s)
	task := MustCreateTask(t, s, p)
	if task.ID == 0 || task.Status != mds.StatusDraft || task.UpgradePolicy().RemindInterval != mds.DefaultRemindInterval {
		t.Fatalf("created task = %+v", task)
	}
	if revision(t, s) <= rev {
		t.Error("creating a task did not move the revision")
	}
	got, err := s.FindTask(ctx(), a.ID, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pol := got.UpgradePolicy(); pol == nil || pol.Mode != mds.ModeSingle || pol.RemindInterval != mds.DefaultRemindInterval ||
		got.ArtifactID != p.ID || got.CreatedBy != "tester" || got.Kind != mds.KindUpgrade {
		t.Errorf("FindTask = %+v (policy %+v)", got, got.Policy)
	}
	for _, step := range []struct {
		a    mds.Action
		want mds.Status
	}{{mds.ActionRelease, mds.StatusLive}, {mds.ActionPause, mds.StatusPaused}, {mds.ActionResume, mds.StatusLive}, {mds.ActionStop, mds.StatusStopped}} {
		rev := revision(t, s)
		got, err := apply(s, task, step.a)
		if err != nil {
			t.Fatalf("%s: %v", step.a, err)
		}
		if got.Status != step.want {
			t.Fatalf("%s: status %s, want %s", step.a, got.Status, step.want)
		}
		if revision(t, s) <= rev {
			t.Errorf("%s did not move the revision", step.a)
		}
	}
	_, err = apply(s, task, mds.ActionResume)
	wantCode(t, err, mds.ECONFLICT)

	want := "[created:draft release:live pause:paused resume:live stop:stopped]"
	if got := history(t, s, task, mds.Page{}); got != want {
		t.Errorf("history = %v, want %s", got, want)
	}
	if got := history(t, s, task, mds.Page{Limit: 2}); got != "[created:draft release:live]" {
		t.Errorf("first page of history = %v", got)
	}
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID, mds.Page{Limit: 2})
	if got := history(t, s, task, mds.Page{After: fmt.Sprint(events[1].ID)}); got != "[pause:paused resume:live stop:stopped]" {
		t.Errorf("second page of history = %v", got)
	}
	other := MustCreateApp(t, s, "blog")
	_, err = s.TaskEvents(ctx(), other.ID, task.ID, mds.Page{})
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindTask(ctx(), other.ID, task.ID)
	wantCode(t, err, mds.ENOTFOUND)

	t2 := MustCreateTask(t, s, p)
	if _, err := apply(s, t2, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	t3 := MustCreateTask(t, s, p)
	live, err := s.ListTasks(ctx(), a.ID, mds.StatusLive, mds.Page{})
	if err != nil || len(live) != 1 || live[0].ID != t2.ID {
		t.Errorf("ListTasks(live) = %v, %v; want only task %d", live, err, t2.ID)
	}
	all, err := s.ListTasks(ctx(), a.ID, "", mds.Page{})
	if err != nil || len(all) != 3 || all[0].ID != t3.ID {
		t.Errorf("ListTasks(all) = %v, %v; want three, newest first", all, err)
	}
	page, err := s.ListTasks(ctx(), a.ID, "", mds.Page{After: fmt.Sprint(t3.ID), Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != t2.ID {
		t.Errorf("second page of tasks = %v, %v", page, err)
	}
}

func history(t testing.TB, s mds.Store, task *mds.Task, p mds.Page) string {
	t.Helper()
	events, err := s.TaskEvents(ctx(), task.AppID, task.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action+":"+string(e.Status))
	}
	return fmt.Sprint(actions)
}

// testTaskCreatedLive: a task released as it is created is one
// transaction with the history of a release; one that fails leaves nothing
// behind, so retrying it cannot make two.
func testTaskCreatedLive(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	p := MustCreatePackage(t, s, a, "2.0")
	task := NewTask(t, p, mds.Targeting{})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	if got := history(t, s, task, mds.Page{}); got != "[created:draft release:live]" {
		t.Errorf("history of a task created live = %s", got)
	}
	bad := NewTask(t, p, mds.Targeting{Whitelists: []int64{12345}})
	bad.Status = mds.StatusLive
	wantCode(t, s.CreateTask(ctx(), bad, "tester"), mds.ENOTFOUND)
	if all, _ := s.ListTasks(ctx(), a.ID, "", mds.Page{}); len(all) != 1 {
		t.Errorf("a failed create left %d tasks, want the one that worked", len(all))
	}
}

func testTaskDelete(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	p := MustCreatePackage(t, s, a, "2.0")
	draft := MustCreateTask(t, s, p)
	live := WindowTask(t, s, a, 1, farFuture)
	if _, err := apply(s, live, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteTask(ctx(), a.ID, live.ID), mds.ECONFLICT)
	if _, err := apply(s, live, mds.ActionPause); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteTask(ctx(), a.ID, live.ID), mds.ECONFLICT)
	other := MustCreateApp(t, s, "blog")
	wantCode(t, s.DeleteTask(ctx(), other.ID, draft.ID), mds.ENOTFOUND)
	if err := s.DeleteTask(ctx(), a.ID, draft.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.FindTask(ctx(), a.ID, draft.ID)
	wantCode(t, err, mds.ENOTFOUND)
	if _, err := apply(s, live, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Admit(ctx(), mds.Admission{TaskID: live.ID, Devices: []string{"d"}, At: farFuture}); err != nil || !ok[0] {
		t.Fatal(ok, err)
	}
	if err := s.DeleteTask(ctx(), a.ID, live.ID); err != nil {
		t.Errorf("deleting a stopped task with history and admissions: %v", err)
	}
	_, err = s.TaskEvents(ctx(), a.ID, live.ID, mds.Page{})
	wantCode(t, err, mds.ENOTFOUND)
}

func testTaskChangeAborts(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	rev := revision(t, s)
	boom := errors.New("boom")
	_, err := s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		t.Status = mds.StatusLive
		return "release", boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateTask error = %v, want boom", err)
	}
	got, _ := s.FindTask(ctx(), a.ID, task.ID)
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID, mds.Page{})
	if got.Status != mds.StatusDraft || len(events) != 1 || revision(t, s) != rev {
		t.Errorf("aborted change left traces: status %s, %d events, revision %d→%d", got.Status, len(events), rev, revision(t, s))
	}
	_, err = s.UpdateTask(ctx(), a.ID, 9999, "tester", func(*mds.Task) (string, error) { return "x", nil })
	wantCode(t, err, mds.ENOTFOUND)
}

// testTaskConcurrent races many releases of one draft: exactly one may win,
// or a task could be released twice and its history lie.
func testTaskConcurrent(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := apply(s, task, mds.ActionRelease)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch mds.ErrorCode(err) {
		case "":
			ok++
		case mds.ECONFLICT:
		default:
			t.Errorf("concurrent release: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent releases succeeded, want exactly 1", ok)
	}
	if got := history(t, s, task, mds.Page{}); got != "[created:draft release:live]" {
		t.Errorf("history %s, want created + one release", got)
	}
}

func testLoadLive(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustCreateApp(t, s, "blog")
	sum := fmt.Sprintf("%064x", 7)
	if err := s.AddBlob(ctx(), a.ID, mds.Blob{SHA256: sum, Size: 10}, "ci"); err != nil {
		t.Fatal(err)
	}
	p1 := &mds.Artifact{AppID: a.ID, Kind: mds.KindUpgrade, Platform: mds.Android, Version: "2.0",
		Spec: &mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sum, Size: 10}}
	if err := p1.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), p1); err != nil {
		t.Fatal(err)
	}
	p2 := MustCreatePackage(t, s, a, "3.0")
	MustCreatePackage(t, s, a, "4.0") // no task
	t1 := MustCreateTask(t, s, p1)
	MustCreateTask(t, s, p2) // draft: not live
	rs := &mds.RuleSet{AppID: a.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	wl := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(s, t1, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	set, err := s.LoadLive(ctx(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Full || set.Revision != revision(t, s) {
		t.Errorf("LiveSet revision %d, store revision %d", set.Revision, revision(t, s))
	}
	if len(set.RuleSets) != 1 || set.RuleSets[0].ID != rs.ID || len(set.Whitelists) != 1 || set.Whitelists[0].ID != wl.ID {
		t.Errorf("LoadLive rule sets %v, whitelists %v; want the app's one of each", set.RuleSets, set.Whitelists)
	}
	if len(set.Apps) != 2 || len(set.Tasks) != 1 || set.Tasks[0].ID != t1.ID || set.Tasks[0].UpgradePolicy() == nil ||
		len(set.Artifacts) != 1 || set.Artifacts[0].ID != p1.ID || len(set.Artifacts[0].Blobs) != 1 {
		t.Errorf("LoadLive = %d apps, tasks %v, artifacts %v; want 2 apps, task %d, package %d with its blob",
			len(set.Apps), set.Tasks, set.Artifacts, t1.ID, p1.ID)
	}
}

func testTaskTargeting(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	other := MustCreateApp(t, s, "blog")
	p := MustCreatePackage(t, s, a, "2.0")
	rs := &mds.RuleSet{AppID: a.ID, Name: "android 12+", Rules: []mds.Rule{{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	wl := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	task := NewTask(t, p, mds.Targeting{
		Rules:      []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"Shanghai"}, CaseInsensitive: true}},
		RuleSets:   []int64{rs.ID},
		Whitelists: []int64{wl.ID},
		Rollout:    &mds.Rollout{Stickiness: mds.StickyUser, Ramp: []mds.RampStep{{At: start, Percent: 50}}},
		Window:     &mds.Window{Start: start, End: start.Add(time.Hour), Cap: 100},
	})
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTask(ctx(), a.ID, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage != mds.StageGray || fmt.Sprintf("%+v", got.Targeting.Rollout) != fmt.Sprintf("%+v", task.Targeting.Rollout) ||
		!got.Targeting.Window.Start.Equal(start) || got.Targeting.Salt == "" || got.Targeting.Salt != task.Targeting.Salt ||
		len(got.Targeting.Rules) != 1 || !got.Targeting.Rules[0].CaseInsensitive || got.Targeting.Whitelists[0] != wl.ID {
		t.Errorf("targeting did not round-trip: %+v", got.Targeting)
	}
	// References must stay within the app, on create and on update.
	foreign := &mds.RuleSet{AppID: other.ID, Name: "x", Rules: rs.Rules}
	if err := s.CreateRuleSet(ctx(), foreign); err != nil {
		t.Fatal(err)
	}
	bad := NewTask(t, p, mds.Targeting{RuleSets: []int64{foreign.ID}})
	wantCode(t, s.CreateTask(ctx(), bad, "tester"), mds.ENOTFOUND)
	_, err = s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		t.Targeting.Whitelists = []int64{wl.ID + 1000}
		return "targeting", nil
	})
	wantCode(t, err, mds.ENOTFOUND)
	updated, err := s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		return "promote", t.Apply(mds.ActionPromote)
	})
	if err != nil || updated.Stage != mds.StageOfficial {
		t.Fatalf("promote: %+v %v", updated, err)
	}
	if got, _ := s.FindTask(ctx(), a.ID, task.ID); got.Targeting.HasGates() || len(got.Targeting.RuleSets) != 1 {
		t.Errorf("after promote the targeting is %+v; want the rules and no gates", got.Targeting)
	}
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID, mds.Page{})
	if last := events[len(events)-1]; last.Action != "promote" || last.Stage != mds.StageOfficial {
		t.Errorf("last event %+v", last)
	}
	// The promoted task no longer uses the whitelist, so it may go.
	if err := s.DeleteWhitelist(ctx(), a.ID, wl.ID); err != nil {
		t.Errorf("deleting a whitelist the promoted task dropped: %v", err)
	}
}

// testReferenceRaces races deleting a rule set or whitelist against a task
// starting to use it. Whatever the interleaving, the database must refuse
// one of the two: a task that is not stopped never names something gone.
func testReferenceRaces(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	p := MustCreatePackage(t, s, a, "2.0")
	const pairs = 40
	both := 0
	for i := range pairs {
		rs := &mds.RuleSet{AppID: a.ID, Name: fmt.Sprintf("r%d", i), Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
		wl := &mds.Whitelist{AppID: a.ID, Name: fmt.Sprintf("w%d", i), Kind: mds.WhitelistUsers}
		if err := s.CreateRuleSet(ctx(), rs); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWhitelist(ctx(), wl); err != nil {
			t.Fatal(err)
		}
		task := NewTask(t, p, mds.Targeting{Rules: rs.Rules})
		if err := s.CreateTask(ctx(), task, "tester"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var useErr, delRS, delWL error
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, useErr = s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
				t.Targeting.RuleSets, t.Targeting.Whitelists = []int64{rs.ID}, []int64{wl.ID}
				t.Targeting.Rules = nil
				return "targeting", nil
			})
		})
		wg.Go(func() { <-start; delRS = s.DeleteRuleSet(ctx(), a.ID, rs.ID) })
		wg.Go(func() { <-start; delWL = s.DeleteWhitelist(ctx(), a.ID, wl.ID) })
		close(start)
		wg.Wait()
		for _, err := range []error{useErr, delRS, delWL} {
			if code := mds.ErrorCode(err); code != "" && code != mds.ECONFLICT && code != mds.ENOTFOUND {
				t.Fatalf("pair %d: unexpected error %v", i, err)
			}
		}
		if useErr == nil && (delRS == nil || delWL == nil) {
			both++
		}
		// Whatever committed, the task names only what exists.
		got, _ := s.FindTask(ctx(), a.ID, task.ID)
		for _, id := range got.Targeting.RuleSets {
			if _, err := s.FindRuleSet(ctx(), a.ID, id); err != nil {
				t.Errorf("pair %d: task names rule set %d, which is gone", i, id)
			}
		}
		for _, id := range got.Targeting.Whitelists {
			if _, err := s.FindWhitelist(ctx(), a.ID, id); err != nil {
				t.Errorf("pair %d: task names whitelist %d, which is gone", i, id)
			}
		}
	}
	if both > 0 {
		t.Errorf("%d of %d races committed both the use and a delete", both, pairs)
	}
}
