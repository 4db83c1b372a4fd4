package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/version"
)

func printPackage(p *api.Package) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "package\t%d\nplatform\t%s\n", p.ID, p.Platform)
		if u := p.UpgradeSpec; u != nil {
			fmt.Fprintf(w, "version\t%s (build %d)\nsource\t%s\n", p.Version, u.Build, u.Source)
			if u.SHA256 != "" {
				fmt.Fprintf(w, "sha256\t%s\nsize\t%d\n", u.SHA256, u.Size)
			}
			if u.URL != "" {
				fmt.Fprintf(w, "url\t%s\n", u.URL)
			}
			return
		}
		fmt.Fprintf(w, "version\t%s\n", p.Version)
		if o := p.Offline; o != nil {
			fmt.Fprintf(w, "offline\t%s (%s)\nserves\t%s%s\nsha256\t%s\nsize\t%d\n", o.Package, o.Type, o.Host, o.Entry, o.SHA256, o.Size)
		}
	}
}

func packageCmd() *cobra.Command {
	cmd, newClient, out := group("package", "Upload, list and delete installable packages")
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
		page                    pageFlags
	)
	create := &cobra.Command{
		Use:   "create --app APP --platform P --version V (--file F | --url U | --store-url S)",
		Short: "Upload a package file, or register an external download URL or store link",
		Example: `  mds package create --app shop --platform android --version 2.1.0 --build 210 \
      --notes "Faster checkout" --file shop-2.1.0.apk --range 1.0.0..2.0.9
  mds package create --app shop --platform ios --version 2.1.0 --store-url https://apps.apple.com/app/id123`,
		Args: cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
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
			in := api.CreatePackage{Platform: mds.Platform(platform), Version: ver, Build: build, Notes: notes,
				Channel: channel, Network: mds.NetworkAny, Silent: silent, Enterprise: enterprise, BundleID: bundleID, Title: title}
			for _, r := range ranges {
				vr, err := version.ParseRange(r)
				if err != nil {
					return fmt.Errorf("--range: %w", err)
				}
				in.AppVersions = append(in.AppVersions, vr)
			}
			if wifiOnly {
				in.Network = mds.NetworkWiFi
			}
			switch {
			case file != "":
				if urlSHA256 != "" || urlSize != 0 {
					return fmt.Errorf("--sha256 and --size describe a --url package; an uploaded file is measured")
				}
				in.Source, in.FileName = mds.SourceBlob, filepath.Base(file)
			case fileURL != "":
				in.Source, in.URL, in.SHA256, in.Size = mds.SourceURL, fileURL, urlSHA256, urlSize
			default:
				in.Source, in.URL = mds.SourceStore, storeURL
			}
			// Everything that can be checked here is, before a possibly
			// multi-gigabyte file is hashed and uploaded.
			if err := validatePackage(in, file != ""); err != nil {
				return err
			}
			a, err := c.App(cmd.Context(), app)
			if err != nil {
				return err
			}
			if !a.HasPlatform(in.Platform) {
				return fmt.Errorf("app %s ships on %s, not %s", a.Slug, mds.JoinPlatforms(a.Platforms), in.Platform)
			}
			if file != "" {
				if in.SHA256, in.Size, err = hashFile(cmd, file); err != nil {
					return err
				}
				if err := uploadFile(cmd, c, app, file, in.SHA256, in.Size); err != nil {
					return err
				}
			}
			p, err := c.CreatePackage(cmd.Context(), app, in)
			if err != nil {
				return err
			}
			return out.print(cmd, p, printPackage(p))
		}),
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
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			res, err := c.Packages(cmd.Context(), app, page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tKIND\tPLATFORM\tVERSION\tBUILD\tSOURCE\tSIZE\tCREATED")
				for _, p := range res.Packages {
					var build, size int64
					var source mds.Source
					ver := p.Version
					switch {
					case p.UpgradeSpec != nil:
						build, source, size = p.UpgradeSpec.Build, p.UpgradeSpec.Source, p.UpgradeSpec.Size
					case p.Hotpatch != nil:
						source, size = mds.SourceBlob, p.Hotpatch.Size
					case p.Offline != nil:
						source, size, ver = mds.SourceBlob, p.Offline.Size, p.Offline.Package+" "+p.Version
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", p.ID, p.Kind, p.Platform, ver, build, source, size, when(p.CreatedAt))
				}
			})
		}),
	}
	appFlag(list)
	page.register(list)
	show := showCmd(newClient, out, "package", "Show a package",
		func(ctx context.Context, c *client.Client, app string, id int64) (*api.Package, error) {
			return c.Package(ctx, app, id)
		}, printPackage)
	del := deleteCmd(newClient, "package", func(ctx context.Context, c *client.Client, app string, id int64) error {
		return c.DeletePackage(ctx, app, id)
	})
	del.Short = "Delete a package no task delivers (delete its stopped tasks first)"
	cmd.AddCommand(create, list, show, del)
	return cmd
}

// validatePackage checks a package as the server will, before anything is
// hashed or uploaded. An uploaded file's digest is not known yet, so a
// stand-in takes its place.
func validatePackage(in api.CreatePackage, upload bool) error {
	spec := &mds.UpgradeSpec{Build: in.Build, Notes: in.Notes, Source: in.Source, SHA256: in.SHA256, Size: in.Size, URL: in.URL,
		FileName: in.FileName, AppVersions: in.AppVersions, Channel: in.Channel, Network: in.Network, Silent: in.Silent,
		Enterprise: in.Enterprise, BundleID: in.BundleID, Title: in.Title}
	if upload {
		spec.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
	}
	a := &mds.Artifact{Kind: mds.KindUpgrade, Platform: in.Platform, Version: in.Version, Spec: spec}
	if err := a.Validate(); err != nil {
		return errors.New(mds.ErrorMessage(err))
	}
	return nil
}

// progress shows a bar on stderr for size bytes when stderr is a terminal,
// and returns a writer that advances it and a function that clears it, so
// that what is printed next (an error) starts on a line of its own.
func progress(cmd *cobra.Command, size int64, what string) (io.Writer, func()) {
	t, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(t.Fd())) {
		return io.Discard, func() {}
	}
	bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(t), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
	return bar, func() { bar.Clear() }
}

// hashFile returns the hex SHA-256 and size of the file at path, showing
// progress on a terminal: a large build takes a while.
func hashFile(cmd *cobra.Command, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	bar, done := progress(cmd, st.Size(), "hashing "+filepath.Base(path))
	defer done()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, bar), f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// uploadFile streams the file with its expected hash, so the server refuses
// a corrupted transfer. A file the app already holds is not sent again.
func uploadFile(cmd *cobra.Command, c *client.Client, app, path, sum string, size int64) error {
	if _, err := c.Blob(cmd.Context(), app, sum); err == nil {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bar, done := progress(cmd, size, "uploading "+filepath.Base(path))
	defer done()
	_, err = c.Upload(cmd.Context(), app, io.TeeReader(f, bar), size, sum)
	return err
}
