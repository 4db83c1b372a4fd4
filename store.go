package mds

import (
	"context"
	"io"
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

// TaskStore holds release tasks and their history.
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

// LiveStore serves the snapshot builder.
type LiveStore interface {
	// Revision returns the current revision; it only grows.
	Revision(ctx context.Context) (int64, error)
	// LoadLive reads, in one consistent view, every app, every task that can
	// reach a device, and the packages those tasks deliver.
	LoadLive(ctx context.Context) (*LiveSet, error)
}

// LiveSet is everything a snapshot is compiled from, as of one revision.
type LiveSet struct {
	Revision int64
	Apps     []*App
	Tasks    []*Task // status live only
	Packages []*Package
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
