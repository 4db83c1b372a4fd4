package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds/sdk"
)

// deviceOfflineCmd is what a device does with H5 offline packages: what
// an app's WebView layer would call the SDK for.
func deviceOfflineCmd(f *deviceFlags, out *printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offline",
		Short: "Install H5 offline packages, list them, and resolve URLs as a WebView would",
		Args:  cobra.ArbitraryArgs,
		RunE:  unknownSubcommand,
	}
	var wifi bool
	var only []string
	install := &cobra.Command{
		Use:   "install --state DIR",
		Short: "Check, then install the offline packages the answer offers: by delta from the version held when one is ready, else whole",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			a, err := c.Check(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.InstallOffline(cmd.Context(), a, sdk.OfflineOptions{WiFi: wifi, Packages: only})
			if err != nil {
				return err
			}
			return reportOffline(cmd, out, res)
		}),
	}
	install.Flags().BoolVar(&wifi, "wifi", false, "the device is on Wi-Fi: install packages released for Wi-Fi only too")
	install.Flags().StringSliceVar(&only, "package", nil, "install only these package IDs, with the global packages they require")
	preset := &cobra.Command{
		Use:   "preset --state DIR PRESET_DIR",
		Short: "Install the packages of a preset (mds offline export), as an app does at its first start",
		Args:  cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			res, err := c.InstallPreset(cmd.Flags().Arg(0))
			if err != nil {
				return err
			}
			return reportOffline(cmd, out, res)
		}),
	}
	list := &cobra.Command{
		Use:   "list --state DIR",
		Short: "List the installed offline packages and where their files are",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			pkgs := c.Offline()
			return out.print(cmd, pkgs, func(w io.Writer) {
				if len(pkgs) == 0 {
					fmt.Fprintln(w, "no offline package installed")
				}
				for _, p := range pkgs {
					prev := ""
					if p.Previous != "" {
						prev = " (previous " + p.Previous + " kept)"
					}
					fmt.Fprintf(w, "%s\t%s%s\t%s\n", p.Package, p.Version, prev, p.Dir)
				}
			})
		}),
	}
	resolve := &cobra.Command{
		Use:   "resolve --state DIR URL",
		Short: "Say how a WebView serves URL: a local file of an installed package, the package's fallback, or the network",
		Args:  cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			r, err := c.Resolve(cmd.Flags().Arg(0))
			if err != nil {
				return err
			}
			return out.print(cmd, r, func(w io.Writer) {
				switch {
				case r.File != "":
					fmt.Fprintf(w, "file\t%s\t(%s %s)\n", r.File, r.Package, r.Version)
				case r.Package != "":
					fmt.Fprintf(w, "fallback\t%s\t(%s %s does not hold it)\n", r.Fallback, r.Package, r.Version)
				default:
					fmt.Fprintln(w, "network\tno installed package serves its host")
				}
			})
		}),
	}
	cmd.AddCommand(install, preset, list, resolve)
	return cmd
}

// reportOffline prints what installing did, and fails when a package was
// not installed.
func reportOffline(cmd *cobra.Command, out *printer, res []sdk.OfflineResult) error {
	if err := out.print(cmd, res, func(w io.Writer) { printOfflineResults(w, res) }); err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("%s %s was not installed: %w", r.Package, r.Version, r.Err)
		}
	}
	return nil
}

func printOfflineResults(w io.Writer, res []sdk.OfflineResult) {
	if len(res) == 0 {
		fmt.Fprintln(w, "nothing to install: every offline package is up to date")
	}
	for _, r := range res {
		from := "none"
		if r.From != "" {
			from = r.From
		}
		switch {
		case r.Err != nil:
			fmt.Fprintf(w, "%s\t%s\tfailed: %v\n", r.Package, r.Version, r.Err)
		case r.WaitsFor != "":
			fmt.Fprintf(w, "%s\t%s\twaits for global package %s, which it requires and which is not installed\n", r.Package, r.Version, r.WaitsFor)
		case r.How == sdk.InstallSkipped:
			fmt.Fprintf(w, "%s\t%s\tskipped: not asked for now, or Wi-Fi only (--wifi), or held already\n", r.Package, r.Version)
		default:
			s := fmt.Sprintf("%s\t%s\tinstalled %s from %s, %d bytes downloaded", r.Package, r.Version, r.How, from, r.Bytes)
			if r.DeltaError != "" {
				s += " (the delta was not used: " + r.DeltaError + ")"
			}
			fmt.Fprintln(w, s)
		}
	}
}
