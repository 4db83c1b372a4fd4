// Package api holds the bodies of the management API's requests and
// answers: one definition each, which the server (httpapi) decodes and
// documents in OpenAPI from their tags, and the client (client, and through
// it the CLI) encodes. Domain types appear where the API shows them as they
// are (apps, tokens, rule sets, whitelists, history).
package api

import (
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/version"
)

// Lists are paged: pass the Next of one page as ?after= for the next one.
// An empty Next means the list is complete.

// CreateApp creates an app.
type CreateApp struct {
	Slug      string         `json:"slug" doc:"Unique URL-safe name, e.g. shop" example:"shop"`
	Name      string         `json:"name,omitempty" doc:"Display name; defaults to the slug"`
	Platforms []mds.Platform `json:"platforms" minItems:"1" doc:"Any of android, ios, harmony"`
}

// UpdateApp changes what it names of an app; absent fields stay.
type UpdateApp struct {
	Slug      *string        `json:"slug,omitempty" doc:"New slug; tokens and tasks follow, scripts using the old one do not"`
	Name      *string        `json:"name,omitempty" doc:"New display name"`
	Platforms []mds.Platform `json:"platforms,omitempty" doc:"The platforms, replacing the old ones; a platform a running task delivers to cannot go"`
}

// Apps is a page of apps.
type Apps struct {
	Apps []*mds.App `json:"apps"`
	Next string     `json:"next,omitempty" doc:"Cursor of the next page; absent on the last"`
}

// Blob is a stored file.
type Blob struct {
	SHA256 string `json:"sha256" doc:"Name the package by this in create-package"`
	Size   int64  `json:"size"`
}

// CreatePackage describes an upgrade package: an uploaded file, a file
// hosted elsewhere, or a store page.
type CreatePackage struct {
	Platform    mds.Platform      `json:"platform" enum:"android,ios,harmony"`
	Version     string            `json:"version" maxLength:"64" doc:"Version name, e.g. 2.4.0" example:"2.4.0"`
	Build       int64             `json:"build,omitempty" minimum:"0" doc:"Build number (Android versionCode, iOS CFBundleVersion)"`
	Notes       string            `json:"notes,omitempty" maxLength:"8192" doc:"Release notes shown to users; multi-line"`
	Source      mds.Source        `json:"source,omitempty" enum:"blob,url,store" doc:"blob (uploaded; the default without url), url (hosted elsewhere; the default with url) or store (a store page)"`
	SHA256      string            `json:"sha256,omitempty" doc:"Hex SHA-256 of the file; required for blob, recommended for url"`
	Size        int64             `json:"size,omitempty" minimum:"0" doc:"Bytes; taken from the blob when uploaded"`
	URL         string            `json:"url,omitempty" maxLength:"4096" doc:"Download URL (url) or store link (store)"`
	FileName    string            `json:"file_name,omitempty" maxLength:"255"`
	AppVersions []version.Range   `json:"app_versions,omitempty" maxItems:"32" doc:"Installed versions that may take this package; none means any older version"`
	Channel     string            `json:"channel,omitempty" doc:"Only devices of this channel"`
	Network     mds.NetworkPolicy `json:"network,omitempty" enum:"any,wifi" doc:"Where devices may download it; default any"`
	Silent      bool              `json:"silent,omitempty" doc:"Download in the background before asking"`
	Enterprise  bool              `json:"enterprise,omitempty" doc:"iOS in-house build installed over the air (itms-services)"`
	BundleID    string            `json:"bundle_id,omitempty" maxLength:"255" doc:"Bundle identifier; required for enterprise builds"`
	Title       string            `json:"title,omitempty" maxLength:"200" doc:"Install prompt title for enterprise builds; defaults to the app name"`
}

// Package is an artifact as the API shows it: the header every kind has,
// and the fields of its kind's spec beside them (those of an upgrade for
// kind upgrade).
type Package struct {
	ID        int64         `json:"id"`
	AppID     int64         `json:"app_id"`
	Kind      mds.Kind      `json:"kind"`
	Platform  mds.Platform  `json:"platform,omitempty"`
	Version   string        `json:"version"`
	Blobs     []mds.BlobRef `json:"blobs,omitempty" doc:"The stored files it consists of"`
	CreatedAt time.Time     `json:"created_at"`
	CreatedBy string        `json:"created_by"`
	*mds.UpgradeSpec
	// Hotpatch is a hotpatch's spec, what its signed manifest says.
	Hotpatch *mds.HotpatchSpec `json:"hotpatch,omitempty"`
	// Offline is an offline package's spec, what its signed manifest says.
	Offline *mds.OfflineSpec `json:"offline,omitempty"`
	// Config is a configuration change's spec.
	Config *mds.ConfigSpec `json:"config,omitempty"`
}

// NewPackage shows artifact a.
func NewPackage(a *mds.Artifact) *Package {
	p := &Package{ID: a.ID, AppID: a.AppID, Kind: a.Kind, Platform: a.Platform, Version: a.Version, Blobs: a.Blobs,
		CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy}
	p.UpgradeSpec, _ = a.Spec.(*mds.UpgradeSpec)
	p.Hotpatch, _ = a.Spec.(*mds.HotpatchSpec)
	p.Offline, _ = a.Spec.(*mds.OfflineSpec)
	p.Config, _ = a.Spec.(*mds.ConfigSpec)
	return p
}

// Deltas are the deltas between an app's offline package versions, by
// target version, newest first.
type Deltas struct {
	Deltas []*mds.Delta `json:"deltas"`
}

// Packages is a page of packages, newest first.
type Packages struct {
	Packages []*Package `json:"packages"`
	Next     string     `json:"next,omitempty"`
}

// CreateTask creates a release task for a package; its kind is the
// package's.
type CreateTask struct {
	PackageID             int64           `json:"package_id" doc:"The package to deliver"`
	Mode                  mds.UpgradeMode `json:"mode,omitempty" enum:"single,multiple,force" doc:"Upgrades: single (remind once per interval), multiple (at every check) or force (block until upgraded)"`
	RemindIntervalSeconds int64           `json:"remind_interval_seconds,omitempty" minimum:"0" doc:"For single mode; default 259200 (3 days)"`
	Targeting             mds.Targeting   `json:"targeting,omitempty" doc:"Who gets it: rules (ANDed) and, for a gray release, gates (whitelists, rollout, capped window; ORed). Without gates the task is official."`
	Release               bool            `json:"release,omitempty" doc:"Make it live right away, in its stage, in the same transaction"`
}

// Task is a release task as the API shows it, with what it delivers.
type Task struct {
	ID        int64         `json:"id"`
	App       string        `json:"app"`
	Kind      mds.Kind      `json:"kind"`
	PackageID int64         `json:"package_id,omitempty"`
	Platform  mds.Platform  `json:"platform,omitempty"`
	Version   string        `json:"version,omitempty"`
	Status    mds.Status    `json:"status"`
	Stage     mds.Stage     `json:"stage"`
	Targeting mds.Targeting `json:"targeting" doc:"What is in force: an official task has no gray gates"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	CreatedBy string        `json:"created_by"`
	*UpgradeTask
}

// UpgradeTask is the policy of an upgrade task.
type UpgradeTask struct {
	Mode                  mds.UpgradeMode `json:"mode"`
	RemindIntervalSeconds int64           `json:"remind_interval_seconds,omitempty"`
}

// NewTask shows task t of app a, delivering artifact p (nil if unknown).
func NewTask(a *mds.App, t *mds.Task, p *mds.Artifact) *Task {
	v := &Task{ID: t.ID, App: a.Slug, Kind: t.Kind, PackageID: t.ArtifactID, Status: t.Status, Stage: t.Stage,
		Targeting: t.Targeting, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, CreatedBy: t.CreatedBy}
	if p != nil {
		v.Platform, v.Version = p.Platform, p.Version
	}
	if pol := t.UpgradePolicy(); pol != nil {
		v.UpgradeTask = &UpgradeTask{Mode: pol.Mode, RemindIntervalSeconds: int64(pol.RemindInterval / time.Second)}
	}
	return v
}

// Tasks is a page of tasks, newest first.
type Tasks struct {
	Tasks []*Task `json:"tasks"`
	Next  string  `json:"next,omitempty"`
}

// History is a page of a task's history, oldest first.
type History struct {
	Events []*mds.TaskEvent `json:"events"`
	Next   string           `json:"next,omitempty"`
}

// CreateToken creates a token.
type CreateToken struct {
	Name             string         `json:"name" doc:"Unique name; shown in task history as the actor" example:"ci-shop"`
	Admin            bool           `json:"admin,omitempty" doc:"Administer the whole deployment (only an admin may grant this)"`
	Grants           []GrantRequest `json:"grants,omitempty"`
	ExpiresInSeconds int64          `json:"expires_in_seconds,omitempty" minimum:"60" maximum:"315360000" doc:"Lifetime, at most 10 years; none means until revoked, or as long as the creating token lives"`
}

// GrantRequest asks for a role on an app.
type GrantRequest struct {
	App  string   `json:"app" doc:"App slug"`
	Role mds.Role `json:"role" enum:"viewer,releaser,admin"`
}

// CreatedToken is a new token with its secret, shown this once.
type CreatedToken struct {
	Token  *mds.Token `json:"token"`
	Secret string     `json:"secret" doc:"The bearer secret. It is not stored and cannot be shown again."`
}

// Tokens is a page of tokens.
type Tokens struct {
	Tokens []*mds.Token `json:"tokens"`
	Next   string       `json:"next,omitempty"`
}

// SaveRuleSet saves a named rule set.
type SaveRuleSet struct {
	Name  string     `json:"name" doc:"Unique in the app, e.g. east-china-wifi"`
	Rules []mds.Rule `json:"rules" minItems:"1" maxItems:"64"`
}

// RuleSets is a page of rule sets.
type RuleSets struct {
	RuleSets []*mds.RuleSet `json:"rule_sets"`
	Next     string         `json:"next,omitempty"`
}

// CreateWhitelist creates an empty whitelist.
type CreateWhitelist struct {
	Name string            `json:"name" doc:"Unique in the app, e.g. beta testers"`
	Kind mds.WhitelistKind `json:"kind" enum:"user,device" doc:"Which ID the entries are: user_id or device_id"`
}

// Whitelists is a page of whitelists.
type Whitelists struct {
	Whitelists []*mds.Whitelist `json:"whitelists"`
	Next       string           `json:"next,omitempty"`
}

// EditWhitelist adds and removes entries.
type EditWhitelist struct {
	Add    []string `json:"add,omitempty" maxItems:"10000" doc:"Entries to add: IDs, or re:<expression>"`
	Remove []string `json:"remove,omitempty" maxItems:"10000"`
}

// Entries is a page of a whitelist's entries, in order.
type Entries struct {
	Entries []string `json:"entries"`
	Next    string   `json:"next,omitempty"`
}

// Explain asks what every live task decides for a device.
type Explain struct {
	Device mds.Device `json:"device" doc:"What the device would send in a check; app_key, and platform for a one-platform app, may be left out"`
	IP     string     `json:"ip,omitempty" doc:"The address the check would come from, for CIDR rules"`
}

// ExplainResult says what every live task decides for a device.
type ExplainResult struct {
	Revision int64                  `json:"revision" doc:"The snapshot revision this explanation is from"`
	Tasks    []delivery.Explanation `json:"tasks" doc:"Every live task of the app, kind by kind, in priority order"`
	Config   []ExplainedNamespace   `json:"config" doc:"The configuration the device would see, namespace by namespace, with the source of each value"`
}

// Preview asks what share of recently seen devices rules match.
type Preview struct {
	Rules    []mds.Rule `json:"rules,omitempty" maxItems:"64"`
	RuleSets []int64    `json:"rule_sets,omitempty" maxItems:"32" doc:"Saved rule sets, ANDed with the rules"`
}

// PreviewResult is the share of recently seen devices the rules match.
type PreviewResult struct {
	Sampled int     `json:"sampled" doc:"Recently seen devices in the sample"`
	Matched int     `json:"matched"`
	Share   float64 `json:"share" doc:"matched / sampled; 0 when nothing was sampled"`
}

// AddTeamKey registers an app team's public key.
type AddTeamKey struct {
	PublicKey string `json:"public_key" doc:"The key in PEM (PKIX, \"PUBLIC KEY\"), as mds keys generate writes it: ECDSA P-256 or Ed25519"`
	Name      string `json:"name,omitempty" doc:"What people call it, e.g. team-2026"`
}

// TeamKeys lists an app's team keys, oldest first.
type TeamKeys struct {
	Keys []*mds.TeamKey `json:"keys"`
}

// ServerKey is a public key of the deployment, which signs check answers.
type ServerKey struct {
	ID        string `json:"id"`
	Alg       string `json:"alg"`
	PublicKey string `json:"public_key" doc:"PEM (PKIX)"`
}

// ServerKeys lists the keys that sign check answers now; devices must
// trust at least one of them.
type ServerKeys struct {
	Keys []ServerKey `json:"keys"`
}
