// Package client is a typed client of the mds management API. Requests and
// answers are the api package's types, the same the server decodes and
// encodes; errors are *Error, which carries the server's problem document
// and unwraps to an *mds.Error, so callers branch with mds.ErrorCode as the
// server's own code does.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

// Client calls one mds server with one token.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the server at base (e.g. http://127.0.0.1:8080)
// authenticating with token.
func New(base, token string) *Client {
	// Uploads run as long as they need; only waiting for the answer's
	// headers once the request is sent is bounded.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 10 * time.Minute
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Transport: tr}}
}

// Error is a problem document the server answered with.
type Error struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Code is the mds error code (mds.ENOTFOUND…); from the status when
	// the answer did not carry one.
	Code   string `json:"code"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	for _, d := range e.Errors {
		msg += "\n  " + strings.TrimSpace(d.Location+" "+d.Message)
	}
	return msg
}

// Unwrap makes mds.ErrorCode and mds.ErrorMessage work on e.
func (e *Error) Unwrap() error { return &mds.Error{Code: e.Code, Message: e.Detail} }

// maxAnswer bounds what the client reads of one answer.
const maxAnswer = 64 << 20

// call sends in (if not nil) as JSON, and decodes the answer into out (if
// not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

// send sends req and decodes its answer into out.
func (c *Client) send(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the server's answer: %w", err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("the server's answer is not what this client expects: %w", err)
		}
	}
	return nil
}

// do sends req with the token. An answer of 400 or more is read, closed
// and returned as an *Error.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the mds server: %w", err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the server's answer: %w", err)
	}
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if json.Unmarshal(b, e) != nil && len(b) > 0 {
		e.Detail = strings.TrimSpace(string(b))
	}
	if e.Code == "" {
		e.Code = api.Code(resp.StatusCode)
	}
	return nil, e
}

// get calls GET path and returns the answer as a T.
func get[T any](ctx context.Context, c *Client, path string) (*T, error) {
	var out T
	if err := c.call(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// send calls method on path with body in and returns the answer as a T.
func send[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.call(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func appPath(app, rest string) string { return "/api/v1/apps/" + url.PathEscape(app) + rest }

func id(n int64) string { return strconv.FormatInt(n, 10) }

// Page asks for one page of a list.
type Page = mds.Page

func pageQuery(p Page) string {
	q := url.Values{}
	if p.After != "" {
		q.Set("after", p.After)
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// ---- apps

// Apps lists the apps the token can see.
func (c *Client) Apps(ctx context.Context, p Page) (*api.Apps, error) {
	return get[api.Apps](ctx, c, "/api/v1/apps"+pageQuery(p))
}

// App gets one app.
func (c *Client) App(ctx context.Context, app string) (*mds.App, error) {
	return get[mds.App](ctx, c, appPath(app, ""))
}

// CreateApp creates an app; it needs an admin token.
func (c *Client) CreateApp(ctx context.Context, in api.CreateApp) (*mds.App, error) {
	return send[mds.App](ctx, c, http.MethodPost, "/api/v1/apps", in)
}

// UpdateApp renames an app or changes its platforms.
func (c *Client) UpdateApp(ctx context.Context, app string, in api.UpdateApp) (*mds.App, error) {
	return send[mds.App](ctx, c, http.MethodPatch, appPath(app, ""), in)
}

// DeleteApp deletes an app and everything it holds.
func (c *Client) DeleteApp(ctx context.Context, app string) error {
	return c.call(ctx, http.MethodDelete, appPath(app, ""), nil, nil)
}

// RotateAppKey gives an app a new key, keeping the old one accepted.
func (c *Client) RotateAppKey(ctx context.Context, app string) (*mds.App, error) {
	return send[mds.App](ctx, c, http.MethodPost, appPath(app, "/key"), nil)
}

// RetireAppKey stops accepting an app's previous key.
func (c *Client) RetireAppKey(ctx context.Context, app string) (*mds.App, error) {
	return send[mds.App](ctx, c, http.MethodDelete, appPath(app, "/key/previous"), nil)
}

// ---- packages

// Blob reports whether the app holds an uploaded file.
func (c *Client) Blob(ctx context.Context, app, sum string) (*api.Blob, error) {
	return get[api.Blob](ctx, c, appPath(app, "/blobs/"+url.PathEscape(sum)))
}

// Upload streams size bytes of r as a file of the app; the server refuses
// it unless it hashes to sum.
func (c *Client) Upload(ctx context.Context, app string, r io.Reader, size int64, sum string) (*api.Blob, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+appPath(app, "/blobs?sha256="+url.QueryEscape(sum)), r)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var out api.Blob
	if err := c.send(req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreatePackage describes an upgrade package.
func (c *Client) CreatePackage(ctx context.Context, app string, in api.CreatePackage) (*api.Package, error) {
	return send[api.Package](ctx, c, http.MethodPost, appPath(app, "/packages"), in)
}

// Packages lists an app's packages, newest first.
func (c *Client) Packages(ctx context.Context, app string, p Page) (*api.Packages, error) {
	return c.PackagesOfKind(ctx, app, "", p)
}

// PackagesOfKind lists an app's packages of kind k, newest first; k ""
// lists every kind.
func (c *Client) PackagesOfKind(ctx context.Context, app string, k mds.Kind, p Page) (*api.Packages, error) {
	q := pageQuery(p)
	if k != "" {
		if q == "" {
			q = "?"
		} else {
			q += "&"
		}
		q += "kind=" + url.QueryEscape(string(k))
	}
	return get[api.Packages](ctx, c, appPath(app, "/packages"+q))
}

// Package gets one package.
func (c *Client) Package(ctx context.Context, app string, pkg int64) (*api.Package, error) {
	return get[api.Package](ctx, c, appPath(app, "/packages/"+id(pkg)))
}

// DeletePackage deletes a package no task delivers.
func (c *Client) DeletePackage(ctx context.Context, app string, pkg int64) error {
	return c.call(ctx, http.MethodDelete, appPath(app, "/packages/"+id(pkg)), nil, nil)
}

// ---- tasks

// CreateTask creates a release task.
func (c *Client) CreateTask(ctx context.Context, app string, in api.CreateTask) (*api.Task, error) {
	return send[api.Task](ctx, c, http.MethodPost, appPath(app, "/tasks"), in)
}

// Tasks lists an app's tasks, newest first; status "" lists all.
func (c *Client) Tasks(ctx context.Context, app string, status mds.Status, p Page) (*api.Tasks, error) {
	q := pageQuery(p)
	if status != "" {
		if q == "" {
			q = "?"
		} else {
			q += "&"
		}
		q += "status=" + url.QueryEscape(string(status))
	}
	return get[api.Tasks](ctx, c, appPath(app, "/tasks"+q))
}

// Task gets one task.
func (c *Client) Task(ctx context.Context, app string, task int64) (*api.Task, error) {
	return get[api.Task](ctx, c, appPath(app, "/tasks/"+id(task)))
}

// Act releases, promotes, pauses, resumes or stops a task.
func (c *Client) Act(ctx context.Context, app string, task int64, a mds.Action) (*api.Task, error) {
	return send[api.Task](ctx, c, http.MethodPost, appPath(app, "/tasks/"+id(task)+"/"+url.PathEscape(string(a))), nil)
}

// SetTargeting replaces a task's targeting.
func (c *Client) SetTargeting(ctx context.Context, app string, task int64, tg mds.Targeting) (*api.Task, error) {
	return send[api.Task](ctx, c, http.MethodPut, appPath(app, "/tasks/"+id(task)+"/targeting"), tg)
}

// History is one page of a task's history, oldest first.
func (c *Client) History(ctx context.Context, app string, task int64, p Page) (*api.History, error) {
	return get[api.History](ctx, c, appPath(app, "/tasks/"+id(task)+"/history"+pageQuery(p)))
}

// DeleteTask deletes a draft or stopped task.
func (c *Client) DeleteTask(ctx context.Context, app string, task int64) error {
	return c.call(ctx, http.MethodDelete, appPath(app, "/tasks/"+id(task)), nil, nil)
}

// ---- tokens

// CreateToken creates a token; the answer holds its secret, once.
func (c *Client) CreateToken(ctx context.Context, in api.CreateToken) (*api.CreatedToken, error) {
	return send[api.CreatedToken](ctx, c, http.MethodPost, "/api/v1/tokens", in)
}

// Tokens lists the tokens this token administers.
func (c *Client) Tokens(ctx context.Context, p Page) (*api.Tokens, error) {
	return get[api.Tokens](ctx, c, "/api/v1/tokens"+pageQuery(p))
}

// DeleteToken revokes a token.
func (c *Client) DeleteToken(ctx context.Context, token int64) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/tokens/"+id(token), nil, nil)
}

// Whoami returns the token in use.
func (c *Client) Whoami(ctx context.Context) (*mds.Token, error) {
	return get[mds.Token](ctx, c, "/api/v1/token")
}

// ---- rule sets

// CreateRuleSet saves a rule set.
func (c *Client) CreateRuleSet(ctx context.Context, app string, in api.SaveRuleSet) (*mds.RuleSet, error) {
	return send[mds.RuleSet](ctx, c, http.MethodPost, appPath(app, "/rule-sets"), in)
}

// RuleSets lists an app's rule sets.
func (c *Client) RuleSets(ctx context.Context, app string, p Page) (*api.RuleSets, error) {
	return get[api.RuleSets](ctx, c, appPath(app, "/rule-sets"+pageQuery(p)))
}

// RuleSet gets one rule set.
func (c *Client) RuleSet(ctx context.Context, app string, rs int64) (*mds.RuleSet, error) {
	return get[mds.RuleSet](ctx, c, appPath(app, "/rule-sets/"+id(rs)))
}

// UpdateRuleSet replaces a rule set.
func (c *Client) UpdateRuleSet(ctx context.Context, app string, rs int64, in api.SaveRuleSet) (*mds.RuleSet, error) {
	return send[mds.RuleSet](ctx, c, http.MethodPut, appPath(app, "/rule-sets/"+id(rs)), in)
}

// DeleteRuleSet deletes a rule set no running task uses.
func (c *Client) DeleteRuleSet(ctx context.Context, app string, rs int64) error {
	return c.call(ctx, http.MethodDelete, appPath(app, "/rule-sets/"+id(rs)), nil, nil)
}

// ---- whitelists

// CreateWhitelist creates an empty whitelist.
func (c *Client) CreateWhitelist(ctx context.Context, app string, in api.CreateWhitelist) (*mds.Whitelist, error) {
	return send[mds.Whitelist](ctx, c, http.MethodPost, appPath(app, "/whitelists"), in)
}

// Whitelists lists an app's whitelists.
func (c *Client) Whitelists(ctx context.Context, app string, p Page) (*api.Whitelists, error) {
	return get[api.Whitelists](ctx, c, appPath(app, "/whitelists"+pageQuery(p)))
}

// Whitelist gets one whitelist.
func (c *Client) Whitelist(ctx context.Context, app string, wl int64) (*mds.Whitelist, error) {
	return get[mds.Whitelist](ctx, c, appPath(app, "/whitelists/"+id(wl)))
}

// ReplaceWhitelist streams a whitelist file in place of the entries. An
// empty file is refused unless allowEmpty.
func (c *Client) ReplaceWhitelist(ctx context.Context, app string, wl int64, file io.Reader, allowEmpty bool) (*mds.Whitelist, error) {
	path := appPath(app, "/whitelists/"+id(wl)+"/entries")
	if allowEmpty {
		path += "?allow_empty=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+path, file)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain")
	var out mds.Whitelist
	if err := c.send(req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EditWhitelist adds and removes entries.
func (c *Client) EditWhitelist(ctx context.Context, app string, wl int64, in api.EditWhitelist) (*mds.Whitelist, error) {
	return send[mds.Whitelist](ctx, c, http.MethodPatch, appPath(app, "/whitelists/"+id(wl)+"/entries"), in)
}

// WhitelistEntries pages through a whitelist's entries in order.
func (c *Client) WhitelistEntries(ctx context.Context, app string, wl int64, p Page) (*api.Entries, error) {
	return get[api.Entries](ctx, c, appPath(app, "/whitelists/"+id(wl)+"/entries"+pageQuery(p)))
}

// DeleteWhitelist deletes a whitelist no running task uses.
func (c *Client) DeleteWhitelist(ctx context.Context, app string, wl int64) error {
	return c.call(ctx, http.MethodDelete, appPath(app, "/whitelists/"+id(wl)), nil, nil)
}

// ---- explain and preview

// Explain says what every live task decides for a device.
func (c *Client) Explain(ctx context.Context, app string, in api.Explain) (*api.ExplainResult, error) {
	return send[api.ExplainResult](ctx, c, http.MethodPost, appPath(app, "/explain"), in)
}

// Preview estimates the share of recently seen devices rules match.
func (c *Client) Preview(ctx context.Context, app string, in api.Preview) (*api.PreviewResult, error) {
	return send[api.PreviewResult](ctx, c, http.MethodPost, appPath(app, "/preview"), in)
}

// ---- keys and hotpatches

// AddTeamKey registers a team public key with the app.
func (c *Client) AddTeamKey(ctx context.Context, app string, in api.AddTeamKey) (*mds.TeamKey, error) {
	return send[mds.TeamKey](ctx, c, http.MethodPost, appPath(app, "/keys"), in)
}

// TeamKeys lists the app's team keys.
func (c *Client) TeamKeys(ctx context.Context, app string) (*api.TeamKeys, error) {
	return get[api.TeamKeys](ctx, c, appPath(app, "/keys"))
}

// RetireTeamKey retires a team key for good.
func (c *Client) RetireTeamKey(ctx context.Context, app, key string) (*mds.TeamKey, error) {
	return send[mds.TeamKey](ctx, c, http.MethodPost, appPath(app, "/keys/"+url.PathEscape(key)+"/retire"), nil)
}

// ServerKeys returns the public keys that sign check answers.
func (c *Client) ServerKeys(ctx context.Context) (*api.ServerKeys, error) {
	return get[api.ServerKeys](ctx, c, "/api/v1/server-keys")
}

// PushHotpatch streams size bytes of r, a signed hotpatch file, to the app.
func (c *Client) PushHotpatch(ctx context.Context, app string, r io.Reader, size int64) (*api.Package, error) {
	return c.pushSigned(ctx, appPath(app, "/hotpatches"), r, size)
}

// pushSigned streams size bytes of r, a team-signed package file, to
// path.
func (c *Client) pushSigned(ctx context.Context, path string, r io.Reader, size int64) (*api.Package, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/zip")
	var out api.Package
	if err := c.send(req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---- offline packages

// PushOffline streams size bytes of r, a signed H5 offline package, to the
// app.
func (c *Client) PushOffline(ctx context.Context, app string, r io.Reader, size int64) (*api.Package, error) {
	return c.pushSigned(ctx, appPath(app, "/offline"), r, size)
}

// Deltas lists the deltas between the app's offline package versions,
// those of package pkg only unless pkg is "".
func (c *Client) Deltas(ctx context.Context, app, pkg string) (*api.Deltas, error) {
	path := "/offline/deltas"
	if pkg != "" {
		path += "?package=" + url.QueryEscape(pkg)
	}
	return get[api.Deltas](ctx, c, appPath(app, path))
}

// PackageFile opens the stored file of package pkg of the app (an upgrade
// uploaded to the server, a hotpatch, an offline package) and returns it
// with its size, -1 when the server did not say. The caller closes it,
// and checks what it reads against the package's sha256: nothing here
// does.
func (c *Client) PackageFile(ctx context.Context, app string, pkg int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+appPath(app, "/packages/"+id(pkg)+"/file"), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// ---- remote configuration

// Config returns the current version of each of the app's namespaces,
// with its keys.
func (c *Client) Config(ctx context.Context, app string) (*api.ConfigVersions, error) {
	return get[api.ConfigVersions](ctx, c, appPath(app, "/config"))
}

// EditConfig sets and deletes keys of namespaces: a new version of each
// namespace it changes, none of those it leaves as they are.
func (c *Client) EditConfig(ctx context.Context, app string, in api.EditConfig) (*api.ConfigVersions, error) {
	return send[api.ConfigVersions](ctx, c, http.MethodPost, appPath(app, "/config"), in)
}

// ConfigVersion gets version n of namespace ns with its keys, the current
// one for n 0.
func (c *Client) ConfigVersion(ctx context.Context, app, ns string, n int64) (*mds.ConfigVersion, error) {
	path := "/config/" + url.PathEscape(ns)
	if n != 0 {
		path += "?version=" + id(n)
	}
	return get[mds.ConfigVersion](ctx, c, appPath(app, path))
}

// ConfigHistory is one page of namespace ns's versions, newest first,
// without their keys.
func (c *Client) ConfigHistory(ctx context.Context, app, ns string, p Page) (*api.ConfigVersions, error) {
	return get[api.ConfigVersions](ctx, c, appPath(app, "/config/"+url.PathEscape(ns)+"/versions"+pageQuery(p)))
}

// ConfigDiff says how namespace ns differs from version from to version
// to, the current one for to 0.
func (c *Client) ConfigDiff(ctx context.Context, app, ns string, from, to int64) (*api.ConfigDiff, error) {
	q := "?from=" + id(from)
	if to != 0 {
		q += "&to=" + id(to)
	}
	return get[api.ConfigDiff](ctx, c, appPath(app, "/config/"+url.PathEscape(ns)+"/diff"+q))
}

// RollbackConfig makes a new version of namespace ns that holds what an
// earlier one held.
func (c *Client) RollbackConfig(ctx context.Context, app, ns string, in api.Rollback) (*api.ConfigVersions, error) {
	return send[api.ConfigVersions](ctx, c, http.MethodPost, appPath(app, "/config/"+url.PathEscape(ns)+"/rollback"), in)
}

// CreateConfigChange describes a gray change of a namespace: a package of
// kind config, which a task (CreateTask with its ID) releases.
func (c *Client) CreateConfigChange(ctx context.Context, app string, in api.ConfigChange) (*api.Package, error) {
	return send[api.Package](ctx, c, http.MethodPost, appPath(app, "/config/changes"), in)
}
