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
// guessing IDs. Missing objects are ENOTFOUND errors. References between
// objects (a task's artifact, rule sets and whitelists; an artifact's
// blobs) stay within one app and are kept by the database itself, so no
// race of two writers can leave a reference dangling.
type Store interface {
	AppStore
	BlobRecordStore
	ArtifactStore
	TeamKeyStore
	TaskStore
	TokenStore
	RuleSetStore
	WhitelistStore
	AdmissionStore
	DeltaStore
	ConfigStore
	LiveStore
	// Revision returns the current revision; it only grows.
	Revision(ctx context.Context) (int64, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// Page asks for one page of a list: at most Limit items after the cursor
// After, which is the Cursor of the last item of the previous page ("" for
// the first page). Lists say what their cursor is.
type Page struct {
	After string
	Limit int
}

// Page limits.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// Validate fills the default limit and bounds it.
func (p *Page) Validate() error {
	switch {
	case p.Limit == 0:
		p.Limit = DefaultPageLimit
	case p.Limit < 0 || p.Limit > MaxPageLimit:
		return Errorf(EINVALID, "limit %d must be between 1 and %d", p.Limit, MaxPageLimit)
	}
	return nil
}

// AppStore holds apps.
type AppStore interface {
	// CreateApp stores a, setting its ID and CreatedAt. A taken slug or key is ECONFLICT.
	CreateApp(ctx context.Context, a *App) error
	FindApp(ctx context.Context, slug string) (*App, error)
	// ListApps lists apps by slug; the cursor is the slug.
	ListApps(ctx context.Context, p Page) ([]*App, error)
	// UpdateApp reads app id, lets change modify it (name, slug, platforms,
	// keys), and saves it. Dropping a platform that a task which is not
	// finished (stopped or rolled back) delivers to is ECONFLICT.
	UpdateApp(ctx context.Context, id int64, change func(*App) error) (*App, error)
	// DeleteApp removes an app with everything it holds. An app with a task
	// that is not finished is ECONFLICT: stop it first.
	DeleteApp(ctx context.Context, id int64) error
}

// BlobRecordStore records which app uploaded which content. Content is
// deduplicated in the BlobStore, but ownership is per app: an artifact may
// only name blobs its own app uploaded, so an app's token can never reach
// another app's file by its digest.
type BlobRecordStore interface {
	// AddBlob records that app appID holds b; recording it again is a no-op.
	AddBlob(ctx context.Context, appID int64, b Blob, actor string) error
	// FindBlob returns app appID's record of blob sum.
	FindBlob(ctx context.Context, appID int64, sum string) (Blob, error)
}

// ArtifactStore holds artifacts; they are never changed once created.
type ArtifactStore interface {
	// CreateArtifact stores a, which must be valid. A blob it names that its
	// app did not upload (or of another size) is EINVALID, unless uploaded
	// holds it: those are recorded as the app's (by a.CreatedBy) in the same
	// transaction, so an artifact refused leaves no record of its file. A
	// hotpatch is refused, in the same transaction, unless the team key
	// that signed it is registered with the app and not retired
	// (EINVALID), and unless its patch version is above that of every
	// hotpatch the app ever had for each app version it patches on its
	// platform, deleted ones included (ECONFLICT): a device can always
	// tell newer from older. An offline package is refused the same way
	// for its team key, and unless its version is above every version its
	// package ever had in the app (ECONFLICT).
	CreateArtifact(ctx context.Context, a *Artifact, uploaded ...Blob) error
	// CheckArtifact returns the error CreateArtifact would refuse a with
	// now for what its kind keeps (a hotpatch's or offline package's team
	// key and version), writing nothing: an upload asks before it stores
	// the file, so that a refusal leaves nothing.
	CheckArtifact(ctx context.Context, a *Artifact) error
	FindArtifact(ctx context.Context, appID, id int64) (*Artifact, error)
	// ListArtifacts lists an app's artifacts of kind ("" for all), newest
	// first; the cursor is the ID.
	ListArtifacts(ctx context.Context, appID int64, kind Kind, p Page) ([]*Artifact, error)
	// DeleteArtifact removes an artifact no task refers to (ECONFLICT otherwise).
	DeleteArtifact(ctx context.Context, appID, id int64) error
}

// TeamKeyStore holds the public keys app teams sign hotpatches with.
// Keys are not device-visible, so their writes leave the revision alone.
type TeamKeyStore interface {
	// AddTeamKey registers k with app k.AppID, setting CreatedAt. A key the
	// app already has, retired or not, is ECONFLICT; more than
	// MaxTeamKeys keys is ECONFLICT.
	AddTeamKey(ctx context.Context, k *TeamKey) error
	FindTeamKey(ctx context.Context, appID int64, id string) (*TeamKey, error)
	// ListTeamKeys lists an app's keys, oldest first.
	ListTeamKeys(ctx context.Context, appID int64) ([]*TeamKey, error)
	// RetireTeamKey retires key id for good; a retired key is ECONFLICT.
	RetireTeamKey(ctx context.Context, appID int64, id, actor string) (*TeamKey, error)
}

// MaxTeamKeys bounds the keys, retired ones included, an app registers.
const MaxTeamKeys = 100

// TaskStore holds release tasks and their history. Creating or updating a
// task checks, in the same transaction, that the artifact, rule sets and
// whitelists it names belong to its app (ENOTFOUND otherwise).
type TaskStore interface {
	// CreateTask stores t, a draft or a task released at once, with its
	// history ("created", and "release" when live) by actor, in one
	// transaction.
	CreateTask(ctx context.Context, t *Task, actor string) error
	FindTask(ctx context.Context, appID, id int64) (*Task, error)
	// ListTasks lists an app's tasks, newest first; status "" lists all;
	// the cursor is the ID.
	ListTasks(ctx context.Context, appID int64, status Status, p Page) ([]*Task, error)
	// UpdateTask reads the task, lets change modify it and name the event,
	// then saves task and event atomically. An error from change aborts.
	UpdateTask(ctx context.Context, appID, id int64, actor string, change func(*Task) (event string, err error)) (*Task, error)
	// DeleteTask removes a draft or stopped task with its history
	// (ECONFLICT for a live, paused or rolled-back one: devices that
	// applied a rolled-back patch are still told to roll back).
	DeleteTask(ctx context.Context, appID, id int64) error
	// TaskEvents returns a task's history, oldest first; the cursor is the
	// event ID.
	TaskEvents(ctx context.Context, appID, taskID int64, p Page) ([]*TaskEvent, error)
}

// TokenStore holds management tokens by the hash of their secret.
type TokenStore interface {
	// CreateToken stores t with its grants. A taken name is ECONFLICT.
	CreateToken(ctx context.Context, t *Token) error
	FindToken(ctx context.Context, id int64) (*Token, error)
	FindTokenByHash(ctx context.Context, hash string) (*Token, error)
	FindTokenByName(ctx context.Context, name string) (*Token, error)
	// ListTokens lists tokens by name; the cursor is the name.
	ListTokens(ctx context.Context, p Page) ([]*Token, error)
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
	// ListRuleSets lists an app's rule sets by name; the cursor is the name.
	ListRuleSets(ctx context.Context, appID int64, p Page) ([]*RuleSet, error)
	// UpdateRuleSet saves s's name and rules.
	UpdateRuleSet(ctx context.Context, s *RuleSet) error
	// DeleteRuleSet removes a rule set no unfinished task refers to (ECONFLICT otherwise).
	DeleteRuleSet(ctx context.Context, appID, id int64) error
}

// WhitelistStore holds whitelists and their entries. Entry changes bump the
// whitelist's version, which is what snapshot builders cache compiled
// lists by, and the store's revision.
type WhitelistStore interface {
	// CreateWhitelist stores an empty whitelist; a name taken in the app is ECONFLICT.
	CreateWhitelist(ctx context.Context, w *Whitelist) error
	FindWhitelist(ctx context.Context, appID, id int64) (*Whitelist, error)
	// ListWhitelists lists an app's whitelists by name; the cursor is the name.
	ListWhitelists(ctx context.Context, appID int64, p Page) ([]*Whitelist, error)
	// ReplaceWhitelist swaps every entry for those entries yields,
	// deduplicated, in one transaction: an error from entries, or more
	// than MaxWhitelistEntries of them, keeps the old entries.
	ReplaceWhitelist(ctx context.Context, appID, id int64, entries iter.Seq2[string, error]) (*Whitelist, error)
	// EditWhitelist adds and removes entries.
	EditWhitelist(ctx context.Context, appID, id int64, add, remove []string) (*Whitelist, error)
	// WhitelistEntries lists entries in order, after the given one, at most limit.
	WhitelistEntries(ctx context.Context, appID, id int64, after string, limit int) ([]string, error)
	// DeleteWhitelist removes a whitelist no unfinished task refers to (ECONFLICT otherwise).
	DeleteWhitelist(ctx context.Context, appID, id int64) error
}

// AdmissionStore records which devices capped windows admitted. It is the
// only store a check may write to, and it is the source of truth: it admits
// by the window the task has in the store, whatever the asking node's
// snapshot says, and nodes remember what it told them, never what they
// concluded alone.
type AdmissionStore interface {
	// Admit admits those of r.Devices it can to the task's capped window: a
	// device admitted before stays admitted; a new one gets in while fewer
	// than the window's cap are, unless the window was sealed at or after
	// its end. It reports, per device, whether it is admitted. The cap holds
	// exactly under any concurrency, across nodes, and across edits of the
	// window.
	Admit(ctx context.Context, r Admission) ([]bool, error)
	// SealWindow closes the task's window ending at end for good: from its
	// commit on, no device is admitted while the window ends at or before
	// end, so a set read after it is complete. Moving the window's end later
	// opens it again.
	SealWindow(ctx context.Context, taskID int64, end time.Time) error
	// Admitted calls fn with every device the task's window admitted.
	Admitted(ctx context.Context, taskID int64, fn func(device string) error) error
	// AdmissionStatus reports whether device is admitted to task's window
	// and how many devices are, without reading them all.
	AdmissionStatus(ctx context.Context, taskID int64, device string) (admitted bool, count int, err error)
}

// Admission asks the store to admit devices to a task's capped window.
type Admission struct {
	TaskID  int64
	Devices []string  // distinct
	At      time.Time // when the devices checked
}

// DeltaStore holds the deltas of offline packages, and hands them to the
// nodes that build them. Releasing a version of an offline package (its
// first task going live) records a pending delta to it from each of the
// versions of the package released before it, the newest DeltaBases
// (mds.DefaultDeltaBases unless the store is set otherwise), in the
// release's transaction.
type DeltaStore interface {
	// ClaimDelta hands a builder the oldest pending delta, or one whose
	// last builder's lease ran out (a node that died building it), marked
	// building until now+lease with one more attempt; nil when there is
	// none. Of builders racing, on any nodes, each delta goes to one.
	ClaimDelta(ctx context.Context, lease time.Duration) (*Delta, error)
	// FinishDelta records how building d, as claimed, ended: d.Status
	// ready with its blob (recorded as the app's in the same transaction,
	// which moves the app's revision: devices that hold d's base are now
	// offered it), skipped or failed with d.Reason, or pending to be
	// tried again, not before d.RetryAt; and d.Attempts, which the builder
	// may lower when it hands back a build it did not finish. A delta whose claim is no longer d's (its lease ran
	// out and another builder took it) is ECONFLICT, and so is one whose
	// packages were deleted meanwhile, which is not recorded.
	FinishDelta(ctx context.Context, d *Delta, blob *Blob) error
	// ListDeltas lists the deltas to the versions of an app's offline
	// package pkg ("" for every package), newest target first.
	ListDeltas(ctx context.Context, appID int64, pkg string) ([]*Delta, error)
}

// ConfigStore holds the versions of apps' configuration namespaces. Every
// write makes new versions, which devices get at once (under the gray
// changes in force for them), so it moves the app's revision.
type ConfigStore interface {
	// EditConfig makes a new version of each namespace edits change,
	// by actor with message, all in one transaction; an edit that leaves
	// its namespace as it is makes none, and a write that changes
	// nothing moves no revision. It returns the new versions. Refused
	// whole, under the app's lock: an edit whose Base is not the
	// namespace's current version (ECONFLICT); a Restore of a version
	// the namespace does not have (ENOTFOUND); a write after which the
	// app's current versions hold more than MaxConfigKeys keys, or keys
	// in more than MaxConfigNamespaces namespaces (EINVALID); two edits of
	// one namespace (EINVALID).
	EditConfig(ctx context.Context, appID int64, actor, message string, edits []ConfigEdit) ([]*ConfigVersion, error)
	// FindConfigVersion returns version number of namespace ns, or its
	// current version for number 0, with its keys.
	FindConfigVersion(ctx context.Context, appID int64, ns string, number int64) (*ConfigVersion, error)
	// ListConfigVersions lists the versions of namespace ns, newest
	// first, without their keys (KeyCount says how many); the cursor is
	// the version's number.
	ListConfigVersions(ctx context.Context, appID int64, ns string, p Page) ([]*ConfigVersion, error)
	// CurrentConfig returns the current version of each of the app's
	// namespaces, with its keys, by namespace.
	CurrentConfig(ctx context.Context, appID int64) ([]*ConfigVersion, error)
}

// LiveStore serves the snapshot builder.
type LiveStore interface {
	// LoadLive reads, in one consistent view, what a snapshot is compiled
	// from: every app, every task that can reach a device (live, or rolled
	// back: see Status.Delivered), the artifacts
	// those tasks deliver, and the rule sets and whitelists (without
	// entries) of their apps. Given the revision of the snapshot it would
	// replace (since; 0 for none), it reads only the apps changed after
	// it, when the store can say which, and the apps named in again
	// whether or not they changed (a node retrying apps it could not
	// compile in full): see LiveSet.Full.
	LoadLive(ctx context.Context, since int64, again ...int64) (*LiveSet, error)
	// LoadWhitelist calls fn with every entry of whitelist id and returns
	// the version those entries are, read in one consistent view.
	LoadWhitelist(ctx context.Context, id int64, fn func(entry string) error) (version int64, err error)
}

// LiveSet is what a snapshot is compiled from, as of one revision: all of
// it, or what changed since an earlier revision.
type LiveSet struct {
	Revision int64
	// Full says the set holds every app. Otherwise it holds the apps that
	// changed after the revision asked for and those asked for again, as
	// they are now, and Changed lists their IDs: an app Changed names and
	// Apps lacks was deleted. With nothing to read, Changed is nil or
	// empty and Full false.
	Full       bool
	Changed    []int64
	Apps       []*App
	Tasks      []*Task // of the statuses a snapshot holds (Status.Delivered)
	Artifacts  []*Artifact
	RuleSets   []*RuleSet
	Whitelists []*Whitelist
	// Deltas are the ready deltas to the offline packages of Artifacts.
	Deltas []*Delta
	// Config holds the current version of every namespace of Apps that
	// holds a key, by app and namespace.
	Config []*ConfigVersion
}

// Change is one write that moved the revision: the revision it made and
// the one app it changed. Nodes announce changes to each other.
type Change struct {
	Revision int64
	AppID    int64
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
