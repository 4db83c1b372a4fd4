package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/signing"
)

// hotpatchCmd packs, checks, pushes and rolls back hotpatches. Packing
// and verifying happen on the team's machine: the private key is read
// here, used to sign, and never sent.
func hotpatchCmd() *cobra.Command {
	cmd, newClient, out := group("hotpatch", "Pack, verify, push and roll back team-signed hotpatches")
	var (
		keyFile, appKey, platform, notes, outFile, pubFile string
		appVersions                                        []string
		patchVersion                                       int64
	)
	pack := &cobra.Command{
		Use:   "pack DIR|FILE --key team.pem --app APP --platform P --app-version V [--app-version V2[:BUILD]] --patch-version N",
		Short: "Build a signed hotpatch file from a directory or a file",
		Long: `Build a signed hotpatch file: a canonical manifest (app key, platform, the exact app versions it
patches, optionally with a build as VERSION:BUILD, patch version, every file's path, size and
sha256, creation time, key ID), the team's signature over the manifest's bytes, and the files.
The app's key is read from the server by --app, or given offline with --app-key.`,
		Example: `  mds hotpatch pack ./patch --key team.pem --app shop --platform android \
      --app-version 2.1.0 --app-version 2.1.1 --patch-version 3 --notes "Fix checkout crash"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := readPrivateKey(keyFile)
			if err != nil {
				return err
			}
			m := hotpatch.Manifest{Platform: mds.Platform(platform), PatchVersion: patchVersion, Notes: notes}
			for _, v := range appVersions {
				t, err := parseTarget(v)
				if err != nil {
					return err
				}
				m.Targets = append(m.Targets, t)
			}
			if m.AppKey, err = appKeyFor(cmd, newClient, appKey); err != nil {
				return err
			}
			if outFile == "" {
				outFile = fmt.Sprintf("hotpatch-%s-%d.zip", platform, patchVersion)
			}
			return writeHotpatch(cmd, outFile, m, args[0], key)
		},
	}
	appFlag(pack)
	pack.Flags().StringVar(&keyFile, "key", "", "the team's private key (PEM), as mds keys generate wrote it")
	pack.Flags().StringVar(&appKey, "app-key", "", "the app's key, to pack without asking the server")
	pack.Flags().StringVar(&platform, "platform", "", "android, ios or harmony")
	pack.Flags().StringArrayVar(&appVersions, "app-version", nil, "an installed version it patches, as VERSION or VERSION:BUILD; repeat for more")
	pack.Flags().Int64Var(&patchVersion, "patch-version", 0, "the patch version: above the last one of each app version it patches")
	pack.Flags().StringVar(&notes, "notes", "", "what the patch fixes, for people")
	pack.Flags().StringVar(&outFile, "out", "", "file to write; default hotpatch-PLATFORM-N.zip")

	verify := &cobra.Command{
		Use:   "verify FILE --pub team.pub.pem",
		Short: "Check a hotpatch file: archive, team signature and every file's hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := readPublicKey(pubFile)
			if err != nil {
				return err
			}
			pkg, closeFile, err := openHotpatch(args[0])
			if err != nil {
				return err
			}
			defer closeFile()
			if err := pkg.Verify(pub); err != nil {
				return err
			}
			if err := pkg.CheckFiles(); err != nil {
				return err
			}
			return out.print(cmd, pkg.Manifest, func(w io.Writer) {
				fmt.Fprintf(w, "signature\tgood (key %s)\n", pub.ID())
				printManifest(w, pkg.Manifest)
			})
		},
	}
	verify.Flags().StringVar(&pubFile, "pub", "", "the team's public key (PEM)")

	push := &cobra.Command{
		Use:   "push FILE --app APP",
		Short: "Upload a signed hotpatch file; the server checks it and stores it as a package to release",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			p, err := pushFile(cmd, args[0], func(ctx context.Context, r io.Reader, size int64) (*api.Package, error) {
				return c.PushHotpatch(ctx, app, r, size)
			})
			if err != nil {
				return err
			}
			return out.print(cmd, p, func(w io.Writer) {
				fmt.Fprintf(w, "package\t%d (hotpatch %s patch %s)\n", p.ID, p.Platform, p.Version)
				if h := p.Hotpatch; h != nil {
					fmt.Fprintf(w, "patches\t%s\nfiles\t%d (%d bytes)\nsigned by\t%s\n", targets(h.Targets), h.Files, h.FilesSize, h.KeyID)
				}
				fmt.Fprintf(w, "next\tmds task create --app %s --package %d --percent 5 --release\n", app, p.ID)
			})
		}),
	}
	appFlag(push)

	rollback := &cobra.Command{
		Use:   "rollback --app APP TASK",
		Short: "Withdraw a released hotpatch: every device running it goes back to the previous live patch or to none",
		Args:  cobra.ExactArgs(1),
		RunE: onID(newClient, "task", func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			t, err := c.Act(cmd.Context(), app, id, mds.ActionRollback)
			if err != nil {
				return err
			}
			return out.print(cmd, t, printTask(t))
		}),
	}
	appFlag(rollback)
	cmd.AddCommand(pack, verify, push, rollback)
	return cmd
}

// parseTarget reads VERSION or VERSION:BUILD.
func parseTarget(s string) (hotpatch.Target, error) {
	v, b, hasBuild := strings.Cut(s, ":")
	t := hotpatch.Target{AppVersion: v}
	if hasBuild {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return t, fmt.Errorf("--app-version %q: give VERSION or VERSION:BUILD with a positive build number", s)
		}
		t.Build = n
	}
	return t, nil
}

func readPrivateKey(path string) (*signing.PrivateKey, error) {
	if path == "" {
		return nil, fmt.Errorf("give the team's private key with --key (mds keys generate writes one)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	k, err := signing.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	return k, nil
}

// appKeyFor returns the app key to pack for: given (--app-key), or read
// from the server for the command's --app.
func appKeyFor(cmd *cobra.Command, newClient func() (*client.Client, error), given string) (string, error) {
	if given != "" {
		return given, nil
	}
	slug := cmd.Flag("app").Value.String()
	if slug == "" {
		return "", fmt.Errorf("name the app with --app (its key is read from the server) or give --app-key")
	}
	c, err := newClient()
	if err != nil {
		return "", err
	}
	a, err := c.App(cmd.Context(), slug)
	if err != nil {
		return "", err
	}
	return a.Key, nil
}

func readPublicKey(path string) (*signing.PublicKey, error) {
	if path == "" {
		return nil, fmt.Errorf("give the team's public key with --pub (mds keys generate writes one)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--pub: %w", err)
	}
	k, err := signing.ParsePublicKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("--pub %s: %w", path, err)
	}
	return k, nil
}

// writeHotpatch packs into a temporary file beside path and renames it into
// place, so a failed pack leaves no half-written hotpatch.
func writeHotpatch(cmd *cobra.Command, path string, m hotpatch.Manifest, src string, key *signing.PrivateKey) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; choose another --out or remove it", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hotpatch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	final, err := hotpatch.Pack(tmp, m, src, key, time.Now())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "wrote\t%s\n", path)
	printManifest(tw, final)
	return tw.Flush()
}

// openHotpatch opens and checks the hotpatch file at path; close closes it.
func openHotpatch(path string) (pkg *hotpatch.Package, close func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil {
		pkg, err = hotpatch.Open(f, st.Size(), hotpatch.DefaultLimits)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return pkg, f.Close, nil
}

func printManifest(w io.Writer, m *hotpatch.Manifest) {
	fmt.Fprintf(w, "app key\t%s\nplatform\t%s\npatches\t%s\npatch version\t%d\nfiles\t%d (%d bytes)\nkey id\t%s\ncreated\t%s\n",
		m.AppKey, m.Platform, targets(m.Targets), m.PatchVersion, len(m.Files), m.TotalSize(), m.KeyID, m.CreatedAt)
}

// pushFile uploads file with push, a progress bar on a terminal.
func pushFile(cmd *cobra.Command, file string, push func(ctx context.Context, r io.Reader, size int64) (*api.Package, error)) (*api.Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bar, done := progress(cmd, st.Size(), "uploading "+filepath.Base(file))
	defer done()
	return push(cmd.Context(), io.TeeReader(f, bar), st.Size())
}

func targets(ts []mds.HotpatchTarget) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.AppVersion
		if t.Build != 0 {
			s[i] += fmt.Sprintf(":%d", t.Build)
		}
	}
	return strings.Join(s, ", ")
}

// ---- team keys on the server

func keysServerCmds(newClient func() (*client.Client, error), out *printer) []*cobra.Command {
	var name string
	add := &cobra.Command{
		Use:   "add --app APP FILE.pub.pem [--name NAME]",
		Short: "Register a team public key with the app: hotpatches it signs are accepted",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if _, err := signing.ParsePublicKeyPEM(b); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if name == "" {
				name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(args[0]), ".pem"), ".pub")
			}
			k, err := c.AddTeamKey(cmd.Context(), app, api.AddTeamKey{PublicKey: string(b), Name: name})
			if err != nil {
				return err
			}
			return out.print(cmd, k, printTeamKey(k))
		}),
	}
	appFlag(add)
	add.Flags().StringVar(&name, "name", "", "what to call it; default the file's name")
	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List the app's team keys, retired ones too",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			ks, err := c.TeamKeys(cmd.Context(), app)
			if err != nil {
				return err
			}
			return out.print(cmd, ks, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tALG\tNAME\tADDED\tSTATE")
				for _, k := range ks.Keys {
					state := "active"
					if k.RetiredAt != nil {
						state = "retired " + when(*k.RetiredAt)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, k.Name, when(k.CreatedAt), state)
				}
			})
		}),
	}
	appFlag(list)
	retire := &cobra.Command{
		Use:   "retire --app APP KEY_ID",
		Short: "Retire a team key for good: hotpatches signed by it are refused from now on",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			k, err := c.RetireTeamKey(cmd.Context(), app, args[0])
			if err != nil {
				return err
			}
			return out.print(cmd, k, printTeamKey(k))
		}),
	}
	appFlag(retire)
	serverPublic := &cobra.Command{
		Use:   "server-public",
		Short: "Print the public keys that sign check answers (PEM), for app builds to trust",
		Args:  cobra.NoArgs,
		RunE: withClient(newClient, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			ks, err := c.ServerKeys(cmd.Context())
			if err != nil {
				return err
			}
			if out.json {
				return out.print(cmd, ks, nil)
			}
			for _, k := range ks.Keys {
				fmt.Fprint(cmd.OutOrStdout(), k.PublicKey)
			}
			return nil
		}),
	}
	return []*cobra.Command{add, list, retire, serverPublic}
}

func printTeamKey(k *mds.TeamKey) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "key id\t%s\nalgorithm\t%s\nname\t%s\nadded\t%s by %s\n", k.ID, k.Alg, k.Name, when(k.CreatedAt), k.CreatedBy)
		if k.RetiredAt != nil {
			fmt.Fprintf(w, "retired\t%s by %s\n", when(*k.RetiredAt), k.RetiredBy)
		}
	}
}
