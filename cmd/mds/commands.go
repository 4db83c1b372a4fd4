package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// printer writes the server's answer as JSON (--json) or as a table for people.
type printer struct{ asJSON *bool }

func (p printer) print(cmd *cobra.Command, raw []byte, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	if *p.asJSON {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := b.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// show calls the API, decodes the answer into v for table, and prints it.
func (c *apiClient) show(cmd *cobra.Command, out printer, method, path string, in, v any, table func(w io.Writer)) error {
	raw, err := c.do(cmd.Context(), method, path, in, v)
	if err != nil {
		return err
	}
	return out.print(cmd, raw, table)
}

// group makes a parent command whose children share --server, --token and --json.
func group(use, short string) (*cobra.Command, func() (*apiClient, error), printer) {
	cmd := &cobra.Command{Use: use, Short: short}
	newClient := clientFlags(cmd)
	var asJSON bool
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	return cmd, newClient, printer{&asJSON}
}

func appFlag(cmd *cobra.Command) {
	cmd.Flags().String("app", env("MDS_APP", ""), "app slug (MDS_APP)")
}

// appClient returns the command's --app and an API client, or why not.
func appClient(cmd *cobra.Command, newClient func() (*apiClient, error)) (string, *apiClient, error) {
	app := cmd.Flag("app").Value.String()
	if app == "" {
		return "", nil, fmt.Errorf("name the app with --app or MDS_APP")
	}
	c, err := newClient()
	return app, c, err
}

// appPath is the API path of something under an app.
func appPath(app, rest string) string { return "/api/v1/apps/" + url.PathEscape(app) + rest }

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

// ---- apps

func appCmd() *cobra.Command {
	cmd, newClient, out := group("app", "Create and list apps")
	var name string
	var platforms []string
	create := &cobra.Command{
		Use:     "create SLUG --platform android [--platform ios …]",
		Short:   "Create an app (needs an admin token)",
		Args:    cobra.ExactArgs(1),
		Example: "  mds app create shop --name Shop --platform android --platform ios",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var a mds.App
			in := map[string]any{"slug": args[0], "name": name, "platforms": platforms}
			return c.show(cmd, out, http.MethodPost, "/api/v1/apps", in, &a, func(w io.Writer) {
				fmt.Fprintf(w, "app\t%s\nname\t%s\nkey\t%s\nplatforms\t%s\n", a.Slug, a.Name, a.Key, mds.JoinPlatforms(a.Platforms))
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringSliceVar(&platforms, "platform", nil, "android, ios or harmony; repeat or separate with commas")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the apps your token can see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var res struct{ Apps []mds.App }
			return c.show(cmd, out, http.MethodGet, "/api/v1/apps", nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "APP\tNAME\tKEY\tPLATFORMS")
				for _, a := range res.Apps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Slug, a.Name, a.Key, mds.JoinPlatforms(a.Platforms))
				}
			})
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

// ---- packages

func packageCmd() *cobra.Command {
	cmd, newClient, out := group("package", "Upload and list installable packages")
	var (
		file, fileURL, storeURL string
		urlSHA256               string
		urlSize                 int64
		platform, ver, notes    string
		notesFile, channel      string
		build                   int64
		ranges                  []string
		wifiOnly, silent        bool
		enterprise              bool
		bundleID, title         string
	)
	create := &cobra.Command{
		Use:   "create --app APP --platform P --version V (--file F | --url U | --store-url S)",
		Short: "Upload a package file, or register an external download URL or store link",
		Example: `  mds package create --app shop --platform android --version 2.1.0 --build 210 \
      --notes "Faster checkout" --file shop-2.1.0.apk --range 1.0.0..2.0.9
  mds package create --app shop --platform ios --version 2.1.0 --store-url https://apps.apple.com/app/id123`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources := 0
			for _, s := range []string{file, fileURL, storeURL} {
				if s != "" {
					sources++
				}
			}
			if sources != 1 {
				return fmt.Errorf("give exactly one of --file, --url, --store-url")
			}
			if notesFile != "" {
				b, err := os.ReadFile(notesFile)
				if err != nil {
					return err
				}
				notes = string(b)
			}
			var appVersions []version.Range
			for _, r := range ranges {
				vr, err := version.ParseRange(r)
				if err != nil {
					return fmt.Errorf("--range: %w", err)
				}
				appVersions = append(appVersions, vr)
			}
			p := mds.Package{Platform: mds.Platform(platform), Version: ver, Build: build, Notes: notes,
				AppVersions: appVersions, Channel: channel, Network: mds.NetworkAny, Silent: silent,
				Enterprise: enterprise, BundleID: bundleID, Title: title}
			if wifiOnly {
				p.Network = mds.NetworkWiFi
			}
			switch {
			case file != "":
				if urlSHA256 != "" || urlSize != 0 {
					return fmt.Errorf("--sha256 and --size describe a --url package; an uploaded file is measured")
				}
				var err error
				p.Source, p.FileName = mds.SourceBlob, filepath.Base(file)
				if p.SHA256, p.Size, err = hashFile(file); err != nil {
					return err
				}
			case fileURL != "":
				p.Source, p.URL, p.SHA256, p.Size = mds.SourceURL, fileURL, urlSHA256, urlSize
			default:
				p.Source, p.URL = mds.SourceStore, storeURL
			}
			// Everything that can be checked here is, before a possibly
			// multi-gigabyte upload starts.
			if err := p.Validate(); err != nil {
				return errors.New(mds.ErrorMessage(err))
			}
			app, c, err := appClient(cmd, newClient)
			if err != nil {
				return err
			}
			var a mds.App
			if _, err := c.do(cmd.Context(), http.MethodGet, appPath(app, ""), nil, &a); err != nil {
				return err
			}
			if !a.HasPlatform(p.Platform) {
				return fmt.Errorf("app %s ships on %s, not %s", a.Slug, mds.JoinPlatforms(a.Platforms), p.Platform)
			}
			if file != "" {
				if err := uploadFile(cmd, c, app, file, p.SHA256, p.Size); err != nil {
					return err
				}
			}
			body := map[string]any{
				"platform": p.Platform, "version": p.Version, "build": p.Build, "notes": p.Notes, "source": p.Source,
				"sha256": p.SHA256, "size": p.Size, "url": p.URL, "file_name": p.FileName, "app_versions": p.AppVersions,
				"channel": p.Channel, "network": p.Network, "silent": p.Silent, "enterprise": p.Enterprise,
				"bundle_id": p.BundleID, "title": p.Title,
			}
			return c.show(cmd, out, http.MethodPost, appPath(app, "/packages"), body, &p, func(w io.Writer) { printPackage(w, &p) })
		},
	}
	f := create.Flags()
	appFlag(create)
	f.StringVar(&file, "file", "", "package file to upload (.apk, .ipa, .hap, …)")
	f.StringVar(&fileURL, "url", "", "download URL of a package hosted elsewhere")
	f.StringVar(&storeURL, "store-url", "", "store page: App Store, Google Play (market://…) or AppGallery (appmarket://…)")
	f.StringVar(&urlSHA256, "sha256", "", "with --url: the file's hex SHA-256, so devices can verify the download")
	f.Int64Var(&urlSize, "size", 0, "with --url: the file's size in bytes")
	f.StringVar(&platform, "platform", "", "android, ios or harmony")
	f.StringVar(&ver, "version", "", "version name, e.g. 2.1.0")
	f.Int64Var(&build, "build", 0, "build number (versionCode / CFBundleVersion)")
	f.StringVar(&notes, "notes", "", "release notes")
	f.StringVar(&notesFile, "notes-file", "", "read release notes from this file")
	f.StringArrayVar(&ranges, "range", nil, "installed versions that may upgrade, MIN..MAX, MIN.. or ..MAX; repeatable")
	f.StringVar(&channel, "channel", "", "only devices of this channel")
	f.BoolVar(&wifiOnly, "wifi-only", false, "download on Wi-Fi only")
	f.BoolVar(&silent, "silent", false, "download in the background before asking")
	f.BoolVar(&enterprise, "enterprise", false, "iOS in-house build, installed over the air")
	f.StringVar(&bundleID, "bundle-id", "", "bundle identifier of an enterprise build")
	f.StringVar(&title, "title", "", "install prompt title of an enterprise build")

	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List an app's packages, newest first",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *apiClient) error {
			var res struct{ Packages []mds.Package }
			return c.show(cmd, out, http.MethodGet, appPath(app, "/packages"), nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tPLATFORM\tVERSION\tBUILD\tSOURCE\tSIZE\tCREATED")
				for _, p := range res.Packages {
					fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%d\t%s\n", p.ID, p.Platform, p.Version, p.Build, p.Source, p.Size, when(p.CreatedAt))
				}
			})
		}),
	}
	appFlag(list)
	cmd.AddCommand(create, list)
	return cmd
}

func printPackage(w io.Writer, p *mds.Package) {
	fmt.Fprintf(w, "package\t%d\nplatform\t%s\nversion\t%s (build %d)\nsource\t%s\n", p.ID, p.Platform, p.Version, p.Build, p.Source)
	if p.SHA256 != "" {
		fmt.Fprintf(w, "sha256\t%s\nsize\t%d\n", p.SHA256, p.Size)
	}
	if p.URL != "" {
		fmt.Fprintf(w, "url\t%s\n", p.URL)
	}
}

// hashFile returns the hex SHA-256 and size of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// uploadFile streams the file with its expected hash, so the server refuses
// a corrupted transfer. Content the server already has is not sent again.
func uploadFile(cmd *cobra.Command, c *apiClient, app, path, sum string, size int64) error {
	if _, err := c.do(cmd.Context(), http.MethodGet, appPath(app, "/blobs/"+sum), nil, nil); err == nil {
		return nil // already there
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var body io.Reader = f
	if t, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(t.Fd())) {
		bar := progressbar.DefaultBytes(size, "uploading "+filepath.Base(path))
		body = io.TeeReader(f, bar)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, c.base+appPath(app, "/blobs?sha256="+sum), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	_, err = c.send(req, nil)
	return err
}

// ---- tasks

// task mirrors the API's task view.
type task struct {
	ID                    int64         `json:"id"`
	App                   string        `json:"app"`
	PackageID             int64         `json:"package_id"`
	Platform              string        `json:"platform"`
	Version               string        `json:"version"`
	Mode                  string        `json:"mode"`
	RemindIntervalSeconds int64         `json:"remind_interval_seconds"`
	Status                string        `json:"status"`
	Stage                 string        `json:"stage"`
	Targeting             mds.Targeting `json:"targeting"`
	CreatedAt             time.Time     `json:"created_at"`
	UpdatedAt             time.Time     `json:"updated_at"`
	CreatedBy             string        `json:"created_by"`
}

func printTask(w io.Writer, t *task) {
	fmt.Fprintf(w, "task\t%d\nstatus\t%s (%s)\npackage\t%d (%s %s)\nmode\t%s\n", t.ID, t.Status, t.Stage, t.PackageID, t.Platform, t.Version, t.Mode)
	if t.RemindIntervalSeconds > 0 {
		fmt.Fprintf(w, "remind every\t%s\n", time.Duration(t.RemindIntervalSeconds)*time.Second)
	}
	describeTargeting(w, &t.Targeting)
}

func taskCmd() *cobra.Command {
	cmd, newClient, out := group("task", "Release packages to devices and drive the releases")
	var (
		pkgID    int64
		target   targetingFlags
		mode     string
		interval time.Duration
		release  bool
		status   string
	)
	create := &cobra.Command{
		Use:   "create --app APP --package ID --mode single|multiple|force",
		Short: "Create a release task: official, or gray with whitelists, a percentage or a capped window",
		Example: `  mds task create --app shop --package 3 --mode single --remind-interval 24h --release
  mds task create --app shop --package 4 --mode force --whitelist 2 --percent 5 \
      --rule "os_version VERSION_GTE 12" --release`,
		Args: cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *apiClient) error {
			var tg mds.Targeting
			if err := target.apply(cmd.Flags(), &tg); err != nil {
				return err
			}
			in := map[string]any{"package_id": pkgID, "mode": mode, "release": release,
				"remind_interval_seconds": int64(interval / time.Second), "targeting": tg}
			var t task
			return c.show(cmd, out, http.MethodPost, appPath(app, "/tasks"), in, &t, func(w io.Writer) { printTask(w, &t) })
		}),
	}
	appFlag(create)
	create.Flags().Int64Var(&pkgID, "package", 0, "ID of the package to deliver")
	create.Flags().StringVar(&mode, "mode", "", "single (remind once per interval), multiple (every check) or force")
	create.Flags().DurationVar(&interval, "remind-interval", 0, "single mode: how often to remind, e.g. 24h (default 72h)")
	create.Flags().BoolVar(&release, "release", false, "make it live at once (gray if it has a gray gate, else official)")
	target.register(create.Flags(), false)

	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List an app's tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *apiClient) error {
			path := appPath(app, "/tasks")
			if status != "" {
				path += "?status=" + url.QueryEscape(status)
			}
			var res struct{ Tasks []task }
			return c.show(cmd, out, http.MethodGet, path, nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSTATUS\tSTAGE\tMODE\tPACKAGE\tPLATFORM\tVERSION\tUPDATED")
				for _, t := range res.Tasks {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Status, t.Stage, t.Mode, t.PackageID, t.Platform, t.Version, when(t.UpdatedAt))
				}
			})
		}),
	}
	appFlag(list)
	list.Flags().StringVar(&status, "status", "", "only draft, live, paused or stopped tasks")

	history := &cobra.Command{
		Use:   "history --app APP TASK",
		Short: "Show what happened to a task, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := taskID(args[0])
			if err != nil {
				return err
			}
			app, c, err := appClient(cmd, newClient)
			if err != nil {
				return err
			}
			var res struct{ Events []mds.TaskEvent }
			path := appPath(app, fmt.Sprintf("/tasks/%d/history", id))
			return c.show(cmd, out, http.MethodGet, path, nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "WHEN\tACTION\tSTATUS\tBY")
				for _, e := range res.Events {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", when(e.At), e.Action, e.Status, e.Actor)
				}
			})
		},
	}
	appFlag(history)
	cmd.AddCommand(create, list, history, targetCmd(newClient, out))

	for _, a := range mds.Actions {
		act := &cobra.Command{
			Use:   string(a) + " --app APP TASK",
			Short: strings.ToUpper(string(a[:1])) + string(a[1:]) + " a task",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := taskID(args[0])
				if err != nil {
					return err
				}
				app, c, err := appClient(cmd, newClient)
				if err != nil {
					return err
				}
				var t task
				path := appPath(app, fmt.Sprintf("/tasks/%d/%s", id, a))
				return c.show(cmd, out, http.MethodPost, path, nil, &t, func(w io.Writer) { printTask(w, &t) })
			},
		}
		appFlag(act)
		cmd.AddCommand(act)
	}
	return cmd
}

func taskID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("task %q: give the numeric task ID from `mds task list`", s)
	}
	return id, nil
}

// ---- tokens

func tokenCmd() *cobra.Command {
	cmd, newClient, out := group("token", "Create, list and revoke API tokens")
	var (
		admin   bool
		grants  []string
		expires time.Duration
	)
	create := &cobra.Command{
		Use:   "create NAME (--admin | --grant APP=ROLE …)",
		Short: "Create a token; its secret is printed once",
		Example: `  mds token create ci-shop --grant shop=releaser
  mds token create dashboard --grant shop=viewer --grant blog=viewer --expires 720h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gs []map[string]string
			for _, g := range grants {
				app, role, ok := strings.Cut(g, "=")
				if !ok {
					return fmt.Errorf("--grant %q: write APP=ROLE, e.g. shop=releaser", g)
				}
				gs = append(gs, map[string]string{"app": app, "role": role})
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			in := map[string]any{"name": args[0], "admin": admin, "grants": gs}
			if expires > 0 {
				in["expires_in_seconds"] = int64(expires / time.Second)
			}
			var res struct {
				Token  mds.Token `json:"token"`
				Secret string    `json:"secret"`
			}
			return c.show(cmd, out, http.MethodPost, "/api/v1/tokens", in, &res, func(w io.Writer) {
				fmt.Fprintf(w, "token\t%s (id %d)\nsecret\t%s\n\nThe secret is shown only now; store it somewhere safe.\n", res.Token.Name, res.Token.ID, res.Secret)
			})
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "administer the whole deployment")
	create.Flags().StringArrayVar(&grants, "grant", nil, "APP=ROLE with ROLE viewer, releaser or admin; repeatable")
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h; default: until revoked")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens you administer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var res struct{ Tokens []mds.Token }
			return c.show(cmd, out, http.MethodGet, "/api/v1/tokens", nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tROLES\tEXPIRES\tCREATED BY")
				for _, t := range res.Tokens {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", t.ID, t.Name, roles(&t), expiry(&t), t.CreatedBy)
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("token %q: give the numeric ID from `mds token list`", args[0])
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			if _, err := c.do(cmd.Context(), http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", id), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %d revoked\n", id)
			return nil
		},
	}
	whoami := &cobra.Command{
		Use:   "whoami",
		Short: "Show the token in use and its roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var t mds.Token
			return c.show(cmd, out, http.MethodGet, "/api/v1/token", nil, &t, func(w io.Writer) {
				fmt.Fprintf(w, "token\t%s (id %d)\nroles\t%s\nexpires\t%s\n", t.Name, t.ID, roles(&t), expiry(&t))
			})
		},
	}
	cmd.AddCommand(create, list, revoke, whoami)
	return cmd
}

func roles(t *mds.Token) string {
	if t.Admin {
		return "admin of everything"
	}
	s := make([]string, len(t.Grants))
	for i, g := range t.Grants {
		s[i] = g.App + "=" + string(g.Role)
	}
	return strings.Join(s, ",")
}

func expiry(t *mds.Token) string {
	if t.ExpiresAt == nil {
		return "never"
	}
	return when(*t.ExpiresAt)
}

// onApp makes a RunE that first resolves the command's --app and an API
// client, as nearly every command needs.
func onApp(newClient func() (*apiClient, error), run func(cmd *cobra.Command, args []string, app string, c *apiClient) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		app, c, err := appClient(cmd, newClient)
		if err != nil {
			return err
		}
		return run(cmd, args, app, c)
	}
}
