package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/atomicfile"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/version"
)

// offlineCmd packs, checks, pushes, follows and exports H5 offline
// packages. Packing and verifying happen on the team's machine: the
// private key is read here, used to sign, and never sent.
func offlineCmd() *cobra.Command {
	cmd, newClient, out := group("offline", "Pack, verify, push, follow and export team-signed H5 offline packages")
	cmd.AddCommand(offlinePackCmd(newClient), offlineVerifyCmd(out), offlinePushCmd(newClient, out),
		offlineStatusCmd(newClient, out), offlineExportCmd(newClient, out))
	return cmd
}

func offlinePackCmd(newClient func() (*client.Client, error)) *cobra.Command {
	var (
		m                                      offline.Manifest
		keyFile, appKey, typ, network, outFile string
		requires, appVersions                  []string
	)
	pack := &cobra.Command{
		Use:   "pack DIR --key team.pem --app APP --package ID --version V --host ORIGIN --fallback URL",
		Short: "Build a signed H5 offline package from a directory of web resources",
		Long: `Build a signed H5 offline package: a canonical manifest (app key, package ID, version, type, the
virtual host it serves and its entry page, the fallback its files are fetched from while it is not
installed, the global packages it requires, the app versions it works with, download policy, every
file's path, size and sha256, creation time, key ID), the team's signature over the manifest's bytes,
and the files. The app's key is read from the server by --app, or given offline with --app-key.`,
		Example: `  mds offline pack ./dist --key team.pem --app shop --package shop-home --version 1.4.0 \
      --host https://shop-home.h5.example --fallback https://cdn.shop.example/shop-home/ \
      --requires common --app-versions 2.0..2.9 --notes "New checkout"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m.Type, m.Network, m.Requires = mds.OfflineType(typ), mds.NetworkPolicy(network), requires
			if err := mds.ValidOfflinePackage(m.Package); err != nil {
				return fmt.Errorf("--package: %s", mds.ErrorMessage(err))
			}
			if err := version.Valid(m.Version); err != nil {
				return fmt.Errorf("--version: %w", err)
			}
			for _, r := range appVersions {
				vr, err := version.ParseRange(r)
				if err != nil {
					return fmt.Errorf("--app-versions %q: %w", r, err)
				}
				m.AppVersions = append(m.AppVersions, vr)
			}
			key, err := readPrivateKey(keyFile)
			if err != nil {
				return err
			}
			if m.AppKey, err = appKeyFor(cmd, newClient, appKey); err != nil {
				return err
			}
			if outFile == "" {
				outFile = m.Package + "-" + m.Version + ".zip"
			}
			return writeOffline(cmd, outFile, m, args[0], key)
		},
	}
	f := pack.Flags()
	appFlag(pack)
	f.StringVar(&keyFile, "key", "", "the team's private key (PEM), as mds keys generate wrote it")
	f.StringVar(&appKey, "app-key", "", "the app's key, to pack without asking the server")
	f.StringVar(&m.Package, "package", "", "the H5 app's package ID, e.g. shop-home")
	f.StringVar(&m.Version, "version", "", "the package's version: above every version of the package pushed before")
	f.StringVar(&m.Host, "host", "", "the virtual host it serves, an origin like https://shop-home.h5.example")
	f.StringVar(&m.Entry, "entry", "/index.html", "the path of its entry page on the host")
	f.StringVar(&m.Fallback, "fallback", "", "base URL its files are fetched from while it is not installed")
	f.StringVar(&typ, "type", string(mds.OfflineNormal), "normal (one H5 app) or global (resources H5 apps share)")
	f.StringSliceVar(&requires, "requires", nil, "global packages its pages load resources from, comma-separated")
	f.StringArrayVar(&appVersions, "app-versions", nil, "installed app versions it works with, MIN..MAX, MIN.. or ..MAX; repeatable; default every version")
	f.StringVar(&network, "network", string(mds.NetworkAny), "where devices may download it: any or wifi")
	f.BoolVar(&m.Preload, "preload", false, "download it when the app starts, not when its host is first visited")
	f.StringVar(&m.Notes, "notes", "", "what changed, for people")
	f.StringVarP(&outFile, "out", "o", "", "file to write; default PACKAGE-VERSION.zip")
	return pack
}

// writeOffline packs the files under src into path, atomically: a pack
// that fails leaves nothing at path.
func writeOffline(cmd *cobra.Command, path string, m offline.Manifest, src string, key *signing.PrivateKey) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; choose another --out or remove it", path)
	}
	h := sha256.New()
	var final *offline.Manifest
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		var err error
		final, err = offline.Pack(io.MultiWriter(w, h), m, src, key, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "wrote\t%s\nsize\t%d bytes\nsha256\t%s\n", path, st.Size(), hex.EncodeToString(h.Sum(nil)))
	printOfflineManifest(tw, final)
	return tw.Flush()
}

func offlineVerifyCmd(out *printer) *cobra.Command {
	var pubFile string
	verify := &cobra.Command{
		Use:   "verify FILE --pub team.pub.pem",
		Short: "Check an offline package: archive, manifest, team signature and every file's hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := readPublicKey(pubFile)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			pkg, err := offline.Open(f, st.Size(), offline.Limits)
			if err != nil {
				return err
			}
			if err := pkg.Verify(pub); err != nil {
				return err
			}
			if err := pkg.CheckFiles(); err != nil {
				return err
			}
			return out.print(cmd, pkg.Manifest, func(w io.Writer) {
				fmt.Fprintf(w, "signature\tgood (key %s)\n", pub.ID())
				printOfflineManifest(w, pkg.Manifest)
			})
		},
	}
	verify.Flags().StringVar(&pubFile, "pub", "", "the team's public key (PEM)")
	return verify
}

func offlinePushCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	push := &cobra.Command{
		Use:   "push FILE --app APP",
		Short: "Upload a signed offline package; the server checks it and stores it as a package to release",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			p, err := pushFile(cmd, args[0], func(ctx context.Context, r io.Reader, size int64) (*api.Package, error) {
				return c.PushOffline(ctx, app, r, size)
			})
			if err != nil {
				return err
			}
			return out.print(cmd, p, func(w io.Writer) {
				fmt.Fprintf(w, "package\t%d\n", p.ID)
				if o := p.Offline; o != nil {
					fmt.Fprintf(w, "offline\t%s %s (%s)\nserves\t%s%s\nfiles\t%d (%d bytes)\nsigned by\t%s\n",
						o.Package, p.Version, o.Type, o.Host, o.Entry, o.Files, o.FilesSize, o.KeyID)
				}
				fmt.Fprintf(w, "next\tmds task create --app %s --package %d --percent 5 --release\n", app, p.ID)
			})
		}),
	}
	appFlag(push)
	return push
}

func offlineStatusCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var pkg string
	status := &cobra.Command{
		Use:   "status --app APP [--package ID]",
		Short: "Show the deltas between offline package versions: built, building, waiting, skipped or failed, and why",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			res, err := c.Deltas(cmd.Context(), app, pkg)
			if err != nil {
				return err
			}
			// A delta's share of its full package says what it saves.
			full := map[int64]*api.Package{}
			if !out.json && slices.ContainsFunc(res.Deltas, func(d *mds.Delta) bool { return d.Size > 0 }) {
				if full, err = offlinePackages(cmd.Context(), c, app); err != nil {
					return err
				}
			}
			return out.print(cmd, res, func(w io.Writer) {
				if len(res.Deltas) == 0 {
					fmt.Fprintln(w, "no deltas: they are built once a version of a package is released after another")
					return
				}
				fmt.Fprintln(w, "PACKAGE\tFROM→TO\tSTATUS\tSIZE\tATTEMPTS\tBUILD MS\tREASON")
				count := map[mds.DeltaStatus]int{}
				for _, d := range res.Deltas {
					count[d.Status]++
					size := "-"
					if d.Size > 0 {
						size = fmt.Sprint(d.Size)
						if p := full[d.To]; p != nil && p.Offline != nil && p.Offline.Size > 0 {
							size += fmt.Sprintf(" (%.1f%%)", 100*float64(d.Size)/float64(p.Offline.Size))
						}
					}
					fmt.Fprintf(w, "%s\t%s→%s\t%s\t%s\t%d\t%d\t%s\n", d.Package, d.FromVersion, d.ToVersion, d.Status, size, d.Attempts, d.BuildMillis, d.Reason)
				}
				var summary []string
				for _, s := range []mds.DeltaStatus{mds.DeltaReady, mds.DeltaBuilding, mds.DeltaPending, mds.DeltaSkipped, mds.DeltaFailed} {
					if count[s] > 0 {
						summary = append(summary, fmt.Sprintf("%d %s", count[s], s))
					}
				}
				fmt.Fprintln(w, strings.Join(summary, ", "))
			})
		}),
	}
	appFlag(status)
	status.Flags().StringVar(&pkg, "package", "", "only the deltas of this offline package ID")
	return status
}

func offlineExportCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var (
		dir   string
		names []string
	)
	export := &cobra.Command{
		Use:   "export --app APP --out DIR [--package ID]...",
		Short: "Write the preset an app build bundles: each offline package's newest official release, and preset.json",
		Long: `Write the preset a team bundles inside its app, so that a fresh install serves its H5 pages
locally before its first check: for each offline package of the app (or each --package), the newest
version that a live task delivers in the official stage (gray releases are left out; a package
without one is skipped, with a note), downloaded as DIR/PACKAGE-VERSION.zip and checked against the
size and sha256 the server recorded, then DIR/preset.json, which lists them (format
mds-offline-preset/1). Every file is written whole or not at all, preset.json last.`,
		Example: `  mds offline export --app shop --out app/src/main/assets/mds-offline
  mds offline export --app shop --out ios/Shop/OfflinePreset --package shop-home --package common`,
		Args: cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			if dir == "" {
				return fmt.Errorf("give the directory to write the preset to with --out")
			}
			for _, n := range names {
				if err := mds.ValidOfflinePackage(n); err != nil {
					return fmt.Errorf("--package: %s", mds.ErrorMessage(err))
				}
			}
			p, err := presetOf(cmd, c, app, names)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, pp := range p.Packages {
				if err := exportFile(cmd, c, app, pp, filepath.Join(dir, pp.File)); err != nil {
					return err
				}
			}
			b, err := p.Encode()
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(filepath.Join(dir, offline.PresetFile), b, 0o644); err != nil {
				return err
			}
			return out.print(cmd, p, func(w io.Writer) {
				fmt.Fprintln(w, "PACKAGE\tVERSION\tID\tTYPE\tSIZE\tFILE")
				for _, pp := range p.Packages {
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\n", pp.Package, pp.Version, pp.PackageID, pp.Type, pp.Size, pp.File)
				}
				fmt.Fprintf(w, "wrote %s (%d packages)\n", filepath.Join(dir, offline.PresetFile), len(p.Packages))
			})
		}),
	}
	appFlag(export)
	export.Flags().StringVar(&dir, "out", "", "directory to write the package files and preset.json to; made if missing")
	export.Flags().StringSliceVar(&names, "package", nil, "only these offline package IDs, comma-separated or repeated; default every offline package of the app")
	return export
}

// presetOf works out the preset of app: for each of its offline packages
// named (all when none is), the newest version a live official task
// delivers. A package without one is noted on stderr and left out.
func presetOf(cmd *cobra.Command, c *client.Client, app string, names []string) (*offline.Preset, error) {
	ctx := cmd.Context()
	a, err := c.App(ctx, app)
	if err != nil {
		return nil, err
	}
	// Tasks first: every package a task delivers was created before it,
	// so the packages listed after hold them all.
	var tasks []*api.Task
	for after := ""; ; {
		res, err := c.Tasks(ctx, app, mds.StatusLive, client.Page{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, res.Tasks...)
		if after = res.Next; after == "" {
			break
		}
	}
	pkgs, err := offlinePackages(ctx, c, app)
	if err != nil {
		return nil, err
	}
	newest := map[string]*api.Package{}
	for _, t := range tasks {
		p := pkgs[t.PackageID]
		if t.Kind != mds.KindOffline || t.Stage != mds.StageOfficial || p == nil || p.Offline == nil {
			continue
		}
		if cur := newest[p.Offline.Package]; cur == nil || version.Compare(p.Version, cur.Version) > 0 {
			newest[p.Offline.Package] = p
		}
	}
	known := map[string]bool{}
	for _, p := range pkgs {
		if p.Offline != nil {
			known[p.Offline.Package] = true
		}
	}
	if len(names) == 0 {
		for n := range known {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("app %s has no offline package; pack one with mds offline pack, and push it with mds offline push", app)
	}
	// A package comes with the globals it requires, as devices get it.
	for i := 0; i < len(names); i++ {
		if p := newest[names[i]]; p != nil {
			for _, r := range p.Offline.Requires {
				if !slices.Contains(names, r) {
					names = append(names, r)
				}
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	preset := &offline.Preset{Format: offline.PresetFormat, AppKey: a.Key}
	for _, n := range names {
		p := newest[n]
		switch {
		case !known[n]:
			return nil, fmt.Errorf("app %s has no offline package %s; push one with mds offline push", app, n)
		case p == nil:
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: no live task in the official stage delivers a version of it\n", n)
			continue
		}
		// Devices are not offered a package without its globals, and a
		// preset says nothing of what requires what: leave it out too.
		if r := slices.IndexFunc(p.Offline.Requires, func(r string) bool { return newest[r] == nil }); r >= 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: it requires global package %s, which no live task in the official stage delivers\n",
				n, p.Offline.Requires[r])
			continue
		}
		o := p.Offline
		preset.Packages = append(preset.Packages, offline.PresetPackage{Package: n, Version: p.Version, PackageID: p.ID, Type: o.Type,
			File: offline.PresetFileName(n, p.Version), Size: o.Size, SHA256: o.SHA256, CanonicalSize: o.CanonicalSize, CanonicalSHA256: o.CanonicalSHA256})
	}
	if len(preset.Packages) == 0 {
		return nil, fmt.Errorf("nothing to export: no live task in the official stage delivers %s of app %s (gray releases are not exported)",
			strings.Join(names, ", "), app)
	}
	if err := preset.Validate(); err != nil {
		return nil, err
	}
	return preset, nil
}

// offlinePackages returns the app's offline packages by ID.
func offlinePackages(ctx context.Context, c *client.Client, app string) (map[int64]*api.Package, error) {
	pkgs := map[int64]*api.Package{}
	for after := ""; ; {
		res, err := c.PackagesOfKind(ctx, app, mds.KindOffline, client.Page{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, p := range res.Packages {
			pkgs[p.ID] = p
		}
		if after = res.Next; after == "" {
			return pkgs, nil
		}
	}
}

// exportFile downloads the file of pp to path, whole or not at all: a
// download that does not hash to what the server recorded leaves nothing.
func exportFile(cmd *cobra.Command, c *client.Client, app string, pp offline.PresetPackage, path string) error {
	rc, size, err := c.PackageFile(cmd.Context(), app, pp.PackageID)
	if err != nil {
		return fmt.Errorf("downloading %s %s (package %d): %w", pp.Package, pp.Version, pp.PackageID, err)
	}
	defer rc.Close()
	if size >= 0 && size != pp.Size {
		return fmt.Errorf("the server sends %s %s (package %d) as %d bytes; the package is %d: nothing was written", pp.Package, pp.Version, pp.PackageID, size, pp.Size)
	}
	bar, done := progress(cmd, pp.Size, "downloading "+pp.File)
	defer done()
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		h := sha256.New()
		// One byte more than expected tells a longer file from the right one.
		n, err := io.Copy(io.MultiWriter(w, h, bar), io.LimitReader(rc, pp.Size+1))
		if err != nil {
			return fmt.Errorf("downloading %s %s (package %d): %w", pp.Package, pp.Version, pp.PackageID, err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); n != pp.Size || sum != pp.SHA256 {
			return fmt.Errorf("the download of %s %s (package %d) is not the package: %d bytes with sha256 %s, where the server recorded %d bytes with sha256 %s; "+
				"nothing was written: run the export again, and if it fails the same way, the server's copy is damaged", pp.Package, pp.Version, pp.PackageID, n, sum, pp.Size, pp.SHA256)
		}
		return nil
	})
}

func printOfflineManifest(w io.Writer, m *offline.Manifest) {
	fmt.Fprintf(w, "app key\t%s\npackage\t%s %s (%s)\nserves\t%s%s\nfallback\t%s\n", m.AppKey, m.Package, m.Version, m.Type, m.Host, m.Entry, m.Fallback)
	if len(m.Requires) > 0 {
		fmt.Fprintf(w, "requires\t%s\n", strings.Join(m.Requires, ", "))
	}
	versions := "every version"
	if len(m.AppVersions) > 0 {
		s := make([]string, len(m.AppVersions))
		for i, r := range m.AppVersions {
			s[i] = r.String()
		}
		versions = strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "app versions\t%s\nnetwork\t%s\npreload\t%t\nfiles\t%d (%d bytes)\nkey id\t%s\ncreated\t%s\n",
		versions, m.Network, m.Preload, len(m.Files), bundle.TotalSize(m.Files), m.KeyID, m.CreatedAt)
}
