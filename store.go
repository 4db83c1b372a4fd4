package mds

import (
	"context"
	"io"
	"iter"
	"time"
)

// Store persists what operators manage. Every write that can change what a
// device is told increments the store's revision in the same transaction, so
// a node that sees a new revision knows its snapshot is stale.
//
// Lookups scoped by app take the app's ID as well as the object's, so a
// caller authorised for one app can never reach another app's objects by
// guessing IDs. Missing objects are ENOTFOUND errors.
type Store interface {
	AppStore
	PackageStore
	TaskStore
	TokenStore
	RuleSetStore
	WhitelistStore
	AdmissionStore
	LiveStore
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// AppStore holds apps.
type AppStore interface {
	// CreateApp stores a, setting its ID and CreatedAt. A taken slug is ECONFLICT.
	CreateApp(ctx context.Context, a *App) error
	FindApp(ctx context.Context, slug string) (*App, error)
	ListApps(ctx context.Context) ([]*App, error)
}

// PackageStore holds packages; they are never changed once created.
type PackageStore interface {
	CreatePackage(ctx context.Context, p *Package) error
	FindPackage(ctx context.Context, appID, id int64) (*Package, error)
	ListPackages(ctx context.Context, appID int64) ([]*Package, error)
}

// TaskStore holds release tasks and their history. Creating or updating a
// task checks, in the same transaction, that the package, rule sets and
// whitelists it names belong to its app (ENOTFOUND otherwise).
type TaskStore interface {
	// CreateTask stores t and a "created" event by actor.
	CreateTask(ctx context.Context, t *Task, actor string) error
	FindTask(ctx context.Context, appID, id int64) (*Task, error)
	// ListTasks lists an app's tasks, newest first; status "" lists all.
	ListTasks(ctx context.Context, appID int64, status Status) ([]*Task, error)
	// UpdateTask reads the task, lets change modify it and name the event,
	// then saves task and event atomically. An error from change aborts.
	UpdateTask(ctx context.Context, appID, id int64, actor string, change func(*Task) (event string, err error)) (*Task, error)
	// TaskEvents returns a task's history, oldest first.
	TaskEvents(ctx context.Context, appID, taskID int64) ([]*TaskEvent, error)
}

// TokenStore holds management tokens by the hash of their secret.
type TokenStore interface {
	// CreateToken stores t with its grants. A taken name is ECONFLICT.
	CreateToken(ctx context.Context, t *Token) error
	FindToken(ctx context.Context, id int64) (*Token, error)
	FindTokenByHash(ctx context.Context, hash string) (*Token, error)
	FindTokenByName(ctx context.Context, name string) (*Token, error)
	ListTokens(ctx context.Context) ([]*Token, error)
	// RekeyToken gives token id a new secret hash and no expiry; bootstrap
	// uses it to hand control back to the operator.
	RekeyToken(ctx context.Context, id int64, hash string) error
	DeleteToken(ctx context.Context, id int64) error
}

// RuleSetStore holds saved rule sets. Changing one changes every task that
// refers to it, so writes move the revision.
type RuleSetStore interface {
	// CreateRuleSet stores s; a name taken in the app is ECONFLICT.
	CreateRuleSet(ctx context.Context, s *RuleSet) error
	FindRuleSet(ctx context.Context, appID, id int64) (*RuleSet, error)
	ListRuleSets(ctx context.Context, appID int64) ([]*RuleSet, error)
	// UpdateRuleSet saves s's name and rules.
	UpdateRuleSet(ctx context.Context, s *RuleSet) error
	// DeleteRuleSet removes a rule set no unstopped task refers to (ECONFLICT otherwise).
	DeleteRuleSet(ctx context.Context, appID, id int64) error
}

// WhitelistStore holds whitelists and their entries. Entry changes bump the
// whitelist's version, which is what snapshot builders cache compiled
// lists by, and the store's revision.
type WhitelistStore interface {
	// CreateWhitelist stores an empty whitelist; a name taken in the app is ECONFLICT.
	CreateWhitelist(ctx context.Context, w *Whitelist) error
	FindWhitelist(ctx context.Context, appID, id int64) (*Whitelist, error)
	ListWhitelists(ctx context.Context, appID int64) ([]*Whitelist, error)
	// ReplaceWhitelist swaps every entry for those entries yields,
	// deduplicated, in one transaction: an error from entries, or more
	// than MaxWhitelistEntries of them, keeps the old entries.
	ReplaceWhitelist(ctx context.Context, appID, id int64, entries iter.Seq2[string, error]) (*Whitelist, error)
	// EditWhitelist adds and removes entries.
	EditWhitelist(ctx context.Context, appID, id int64, add, remove []string) (*Whitelist, error)
	// WhitelistEntries lists entries in order, after the given one, at most limit.
	WhitelistEntries(ctx context.Context, appID, id int64, after string, limit int) ([]string, error)
	// DeleteWhitelist removes a whitelist no unstopped task refers to (ECONFLICT otherwise).
	DeleteWhitelist(ctx context.Context, appID, id int64) error
}

// AdmissionStore records which devices capped windows admitted. It is the
// only store a check may write to, at most once per admitted device.
type AdmissionStore interface {
	// Admit admits device to task's window unless limit devices already
	// are. It reports whether device is admitted, now or before; the cap
	// holds exactly under any concurrency.
	Admit(ctx context.Context, taskID int64, device string, limit int, at time.Time) (bool, error)
	// Admitted lists the devices task's window admitted.
	Admitted(ctx context.Context, taskID int64) ([]string, error)
	// AdmissionStatus reports whether device is admitted to task's window
	// and how many devices are, without reading them all.
	AdmissionStatus(ctx context.Context, taskID int64, device string) (admitted bool, count int, err error)
}

// LiveStore serves the snapshot builder.
type LiveStore interface {
	// Revision returns the current revision; it only grows.
	Revision(ctx context.Context) (int64, error)
	// LoadLive reads, in one consistent view, every app, every task that can
	// reach a device, the packages those tasks deliver, and the rule sets
	// and whitelists (without entries) they refer to.
	LoadLive(ctx context.Context) (*LiveSet, error)
	// LoadWhitelist calls fn with every entry of whitelist id and returns
	// the version those entries are, read in one consistent view.
	LoadWhitelist(ctx context.Context, id int64, fn func(entry string) error) (version int64, err error)
}

// LiveSet is everything a snapshot is compiled from, as of one revision.
type LiveSet struct {
	Revision   int64
	Apps       []*App
	Tasks      []*Task // status live only
	Packages   []*Package
	RuleSets   []*RuleSet
	Whitelists []*Whitelist
}

// Blob describes stored content, addressed by its SHA-256.
type Blob struct {
	SHA256  string
	Size    int64
	ModTime time.Time
}

// BlobStore keeps immutable content addressed by its SHA-256. A Put that
// fails or is interrupted leaves nothing visible.
type BlobStore interface {
	// Put streams r into the store. If want is not empty the content must
	// hash to it, or Put fails with EINVALID and keeps nothing.
	Put(ctx context.Context, r io.Reader, want string) (Blob, error)
	// Open returns the content for reading and seeking.
	Open(ctx context.Context, sha256 string) (io.ReadSeekCloser, Blob, error)
	Stat(ctx context.Context, sha256 string) (Blob, error)
}
