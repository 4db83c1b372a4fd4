package storetest

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// Legacy is a database at schema version 2 (upgrade packages, before
// artifacts of every kind) for the migration test.
type Legacy struct {
	// DB stays open after Upgrade, as the connection of a node of an
	// older version still running during a rolling upgrade.
	DB *sql.DB
	// Upgrade migrates the database to the newest schema and opens the
	// store on it.
	Upgrade func(t testing.TB) mds.Store
}

// RunMigration fills a schema-2 database the way the service used it, then
// migrates it and checks through the store that everything came forward:
// packages as upgrade artifacts with their blobs, tasks with their policy
// and targeting, references as rows the database enforces, history,
// window admissions, and ID counters past every ID ever handed out.
func RunMigration(t *testing.T, open func(t testing.TB) Legacy) {
	l := open(t)
	sum := strings.Repeat("ab", 32)
	for _, q := range []string{
		`INSERT INTO apps (slug, name, app_key, platforms, created_at) VALUES ('shop', 'Shop', 'ak_shop', 'android,ios', 1000)`,
		`INSERT INTO apps (slug, name, app_key, platforms, created_at) VALUES ('blog', 'Blog', 'ak_blog', 'android', 1000)`,
		`INSERT INTO packages (app_id, platform, version, build, notes, source, sha256, size, url, file_name, app_versions,
			channel, network, silent, enterprise, bundle_id, title, created_at, created_by)
			VALUES (1, 'ios', '2.1.0', 210, 'Faster checkout.
It''s "quick".', 'blob', '` + sum + `', 1234, '', 'shop.ipa', '[{"min":"1.0","max":"1.9.9"}]',
			'huawei', 'wifi', true, true, 'com.example.shop', 'Shop', 2000, 'ci')`,
		`INSERT INTO packages (app_id, platform, version, build, notes, source, sha256, size, url, file_name, app_versions,
			channel, network, silent, enterprise, bundle_id, title, created_at, created_by)
			VALUES (1, 'android', '2.2.0', 220, '', 'url', '', 0, 'https://cdn.example.com/a.apk', '', 'null',
			'', 'any', false, false, '', '', 2001, 'ci')`,
		`INSERT INTO packages (app_id, platform, version, build, notes, source, sha256, size, url, file_name, app_versions,
			channel, network, silent, enterprise, bundle_id, title, created_at, created_by)
			VALUES (2, 'android', '1.1', 0, '', 'store', '', 0, 'market://details?id=blog', '', '[]',
			'', 'any', false, false, '', '', 2002, 'ci')`,
		`INSERT INTO packages (app_id, platform, version, build, notes, source, sha256, size, url, file_name, app_versions,
			channel, network, silent, enterprise, bundle_id, title, created_at, created_by)
			VALUES (1, 'android', '9.9', 0, '', 'url', '', 0, 'https://cdn.example.com/gone.apk', '', '[]',
			'', 'any', false, false, '', '', 2003, 'ci')`,
		`DELETE FROM packages WHERE id = 4`, // the highest ID, deleted: it must never come back
		`INSERT INTO rule_sets (app_id, name, rules, created_at, updated_at)
			VALUES (1, 'android 12', '[{"field":"os_version","operator":"VERSION_GTE","values":["12"]}]', 3000, 3000)`,
		`INSERT INTO whitelists (app_id, name, kind, entries, patterns, version, created_at, updated_at)
			VALUES (1, 'testers', 'user', 3, 2, 3, 3000, 3000)`,
		`INSERT INTO whitelist_entries (whitelist_id, entry) VALUES (1, 'alice'), (1, 're:^qa-'), (1, 'RE:upper')`,
		// A whitelist only a task promoted before the upgrade names: the
		// old promote kept its gates.
		`INSERT INTO whitelists (app_id, name, kind, entries, patterns, version, created_at, updated_at)
			VALUES (1, 'early birds', 'user', 0, 0, 1, 3000, 3000)`,
		// 1: a live gray task with references and a window; 2: paused; 3:
		// stopped, naming a rule set long gone; 4: live but naming a rule
		// set that no longer exists (an old race).
		`INSERT INTO tasks (app_id, package_id, kind, mode, remind_interval_ms, status, created_at, updated_at, created_by,
			stage, targeting, admitted) VALUES (1, 1, 'upgrade', 'single', 3600000, 'live', 4000, 4001, 'ci', 'gray',
			'{"rule_sets":[1],"whitelists":[1],"window":{"start":"2026-12-01T10:00:00Z","end":"2026-12-01T11:00:00Z","cap":2},"salt":"abc"}', 2)`,
		`INSERT INTO tasks (app_id, package_id, kind, mode, remind_interval_ms, status, created_at, updated_at, created_by,
			stage, targeting, admitted) VALUES (1, 2, 'upgrade', 'force', 0, 'paused', 4000, 4002, 'ci', 'official', '{"salt":"def"}', 0)`,
		`INSERT INTO tasks (app_id, package_id, kind, mode, remind_interval_ms, status, created_at, updated_at, created_by,
			stage, targeting, admitted) VALUES (2, 3, 'upgrade', 'multiple', 0, 'stopped', 4000, 4003, 'ci', 'official', '{"rule_sets":[77],"salt":"ghi"}', 0)`,
		`INSERT INTO tasks (app_id, package_id, kind, mode, remind_interval_ms, status, created_at, updated_at, created_by,
			stage, targeting, admitted) VALUES (1, 2, 'upgrade', 'multiple', 0, 'live', 4000, 4004, 'ci', 'official', '{"rule_sets":[99],"salt":"jkl"}', 0)`,
		`INSERT INTO tasks (app_id, package_id, kind, mode, remind_interval_ms, status, created_at, updated_at, created_by,
			stage, targeting, admitted) VALUES (1, 2, 'upgrade', 'force', 0, 'live', 4000, 4005, 'ci', 'official',
			'{"rule_sets":[1],"whitelists":[2],"rollout":{"percent":5,"stickiness":"device"},"salt":"mno"}', 0)`,
		`INSERT INTO task_events (task_id, at, actor, action, status, stage) VALUES (1, 4000, 'ci', 'created', 'draft', 'gray')`,
		`INSERT INTO task_events (task_id, at, actor, action, status, stage) VALUES (1, 4001, 'ci', 'release', 'live', 'gray')`,
		`INSERT INTO task_events (task_id, at, actor, action, status, stage) VALUES (4, 4004, 'ci', 'created', 'live', 'official')`,
		`INSERT INTO task_admissions (task_id, device, at) VALUES (1, 'd1', 5000), (1, 'd2', 5001)`,
		`INSERT INTO tokens (name, hash, admin, expires_at, created_at, created_by) VALUES ('ci', 'hash-ci', false, NULL, 1000, 'root')`,
		`INSERT INTO token_grants (token_id, app_id, role) VALUES (1, 1, 'releaser')`,
		`UPDATE meta SET revision = 42 WHERE id = 1`,
	} {
		if _, err := l.DB.Exec(q); err != nil {
			t.Fatalf("filling the schema-2 database: %v\n%s", err, q)
		}
	}
	s := l.Upgrade(t)
	t.Cleanup(func() { s.Close() })

	shop, err := s.FindApp(ctx(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	// Apps start at the revision of the migration, which no change of
	// theirs is newer than.
	if apps, err := s.ListApps(ctx(), mds.Page{}); err != nil || len(apps) != 2 || apps[0].Revision != 42 || apps[1].Revision != 42 {
		t.Errorf("apps after the migration: %+v, %v; want both at revision 42", apps, err)
	}
	ipa, err := s.FindArtifact(ctx(), shop.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := &mds.UpgradeSpec{Build: 210, Notes: "Faster checkout.\nIt's \"quick\".", Source: mds.SourceBlob, SHA256: sum, Size: 1234,
		FileName: "shop.ipa", AppVersions: []version.Range{{Min: "1.0", Max: "1.9.9"}}, Channel: "huawei", Network: mds.NetworkWiFi,
		Silent: true, Enterprise: true, BundleID: "com.example.shop", Title: "Shop"}
	if ipa.Kind != mds.KindUpgrade || ipa.Platform != mds.IOS || ipa.Version != "2.1.0" || !reflect.DeepEqual(ipa.Spec, want) ||
		ipa.CreatedBy != "ci" || ipa.CreatedAt.UnixMilli() != 2000 ||
		!reflect.DeepEqual(ipa.Blobs, []mds.BlobRef{{Role: mds.BlobPackage, SHA256: sum, Size: 1234}}) {
		t.Errorf("package 1 came forward as %+v, spec %+v", ipa, ipa.Spec)
	}
	if b, err := s.FindBlob(ctx(), shop.ID, sum); err != nil || b.Size != 1234 {
		t.Errorf("the uploaded file of package 1 is not the app's blob: %+v, %v", b, err)
	}
	apk, err := s.FindArtifact(ctx(), shop.ID, 2)
	if err != nil || apk.Spec.(*mds.UpgradeSpec).URL != "https://cdn.example.com/a.apk" || len(apk.Blobs) != 0 {
		t.Errorf("package 2 = %+v, %v", apk, err)
	}
	if newer := MustCreatePackage(t, s, shop, "3.0"); newer.ID <= 4 {
		t.Errorf("a new package got ID %d; IDs up to 4 were handed out before the migration", newer.ID)
	}

	live, err := s.FindTask(ctx(), shop.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if pol := live.UpgradePolicy(); pol == nil || pol.Mode != mds.ModeSingle || pol.RemindInterval != time.Hour ||
		live.Status != mds.StatusLive || live.Stage != mds.StageGray || live.ArtifactID != 1 ||
		live.Targeting.Salt != "abc" || live.Targeting.Window == nil || live.Targeting.Window.Cap != 2 {
		t.Errorf("task 1 came forward as %+v (policy %+v)", live, live.Policy)
	}
	if got := history(t, s, live, mds.Page{}); got != "[created:draft release:live]" {
		t.Errorf("task 1 history %s", got)
	}
	// The references are now the database's to keep.
	wantCode(t, s.DeleteRuleSet(ctx(), shop.ID, 1), mds.ECONFLICT)
	wantCode(t, s.DeleteWhitelist(ctx(), shop.ID, 1), mds.ECONFLICT)
	// The window's admissions and count stand.
	if in, n, err := s.AdmissionStatus(ctx(), 1, "d1"); err != nil || !in || n != 2 {
		t.Errorf("admission of d1: %v, %d, %v; want admitted, 2 in all", in, n, err)
	}
	ok, err := s.Admit(ctx(), mds.Admission{TaskID: 1, Devices: []string{"d2", "d3"}, At: time.Now()})
	if err != nil || fmt.Sprint(ok) != "[true false]" {
		t.Errorf("the full window after the migration: %v, %v; want d2 in and d3 refused", ok, err)
	}

	if paused, err := s.FindTask(ctx(), shop.ID, 2); err != nil || paused.UpgradePolicy().Mode != mds.ModeForce || paused.Status != mds.StatusPaused {
		t.Errorf("task 2 = %+v, %v", paused, err)
	}
	dangling, err := s.FindTask(ctx(), shop.ID, 4)
	if err != nil || dangling.Status != mds.StatusStopped {
		t.Fatalf("task 4, which named a missing rule set, = %+v, %v; want it stopped", dangling, err)
	}
	events, _ := s.TaskEvents(ctx(), shop.ID, 4, mds.Page{})
	if last := events[len(events)-1]; last.Actor != "mds migration" || last.Status != mds.StatusStopped || !strings.HasPrefix(last.Action, "stop") {
		t.Errorf("task 4's last event %+v; want the migration's stop", last)
	}
	blog, _ := s.FindApp(ctx(), "blog")
	if stopped, err := s.FindTask(ctx(), blog.ID, 3); err != nil || stopped.Status != mds.StatusStopped || stopped.UpgradePolicy().Mode != mds.ModeMultiple {
		t.Errorf("task 3 = %+v, %v", stopped, err)
	}
	task := MustCreateTask(t, s, apk)
	if task.ID <= 5 {
		t.Errorf("a new task got ID %d", task.ID)
	}
	if ev, _ := s.TaskEvents(ctx(), shop.ID, task.ID, mds.Page{}); len(ev) != 1 || ev[0].ID <= 3 {
		t.Errorf("a new event got ID %v; IDs up to 3 were handed out", ev)
	}

	set, err := s.LoadLive(ctx(), 0)
	if err != nil || !set.Full || len(set.Tasks) != 2 || len(set.Artifacts) != 2 || len(set.RuleSets) != 1 || len(set.Whitelists) != 2 {
		t.Errorf("LoadLive after the migration: %+v, %v", set, err)
	}
	// Writes after the migration record their app.
	before := revision(t, s)
	if _, err := s.UpdateApp(ctx(), shop.ID, func(a *mds.App) error { a.Name = "Shop"; return nil }); err != nil {
		t.Fatal(err)
	}
	if set, err := s.LoadLive(ctx(), before); err != nil || set.Full || len(set.Changed) != 1 || set.Changed[0] != shop.ID {
		t.Errorf("LoadLive since the migration's first write: %+v, %v; want shop alone", set, err)
	}
	// A node of the older version, during a rolling upgrade, moves the
	// revision without logging its app: a node behind that write reads
	// everything rather than miss it, and one past it reads what is
	// logged again.
	before = revision(t, s)
	if _, err := l.DB.Exec(`UPDATE meta SET revision = revision + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if set, err := s.LoadLive(ctx(), before); err != nil || !set.Full || len(set.Apps) != 2 {
		t.Errorf("LoadLive across an older node's write: %+v, %v; want everything", set, err)
	}
	if _, err := s.UpdateApp(ctx(), blog.ID, func(a *mds.App) error { a.Name = "The Blog"; return nil }); err != nil {
		t.Fatal(err)
	}
	if set, err := s.LoadLive(ctx(), before); err != nil || !set.Full {
		t.Errorf("LoadLive across an older node's write and a logged one: %+v, %v; want everything", set, err)
	}
	if set, err := s.LoadLive(ctx(), before+1); err != nil || set.Full || len(set.Changed) != 1 || set.Changed[0] != blog.ID {
		t.Errorf("LoadLive past the older node's write: %+v, %v; want blog alone", set, err)
	}
	if got, _ := s.FindApp(ctx(), "blog"); got.Revision != revision(t, s) {
		t.Errorf("blog at revision %d after its write; the store is at %d", got.Revision, revision(t, s))
	}
	if got, _ := s.FindApp(ctx(), "shop"); got.Revision <= 42 || got.Revision >= revision(t, s) {
		t.Errorf("shop at revision %d; want that of its write after the migration", got.Revision)
	}
	// Hotpatches land on the migrated schema.
	hp := MustCreateHotpatch(t, s, shop, 1)
	if _, err := s.FindArtifact(ctx(), shop.ID, hp.ID); err != nil {
		t.Errorf("a hotpatch after the migration: %v", err)
	}
	if tok, err := s.FindTokenByHash(ctx(), "hash-ci"); err != nil || !tok.Can(shop.ID, mds.RoleReleaser) {
		t.Errorf("token after the migration: %+v, %v", tok, err)
	}
	if w, err := s.FindWhitelist(ctx(), shop.ID, 1); err != nil || w.Entries != 3 || w.Patterns != 1 || w.Version != 3 {
		t.Errorf("whitelist after the migration: %+v, %v; want 3 entries of which 1 lowercase re: pattern", w, err)
	}
	// The task promoted before the upgrade shows what is in force: its
	// rule set, no gates; and the whitelist only its gate named may go.
	promoted, err := s.FindTask(ctx(), shop.ID, 5)
	if err != nil || promoted.Targeting.HasGates() || len(promoted.Targeting.RuleSets) != 1 || promoted.Targeting.Salt != "mno" {
		t.Errorf("a task promoted before the migration: %+v, %v", promoted, err)
	}
	if err := s.DeleteWhitelist(ctx(), shop.ID, 2); err != nil {
		t.Errorf("deleting a whitelist only a dropped gate named: %v", err)
	}
}
