package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds/sdk"
)

// deviceConfigCmd is what a device sees of remote configuration: what an
// app's getters would read.
func deviceConfigCmd(f *deviceFlags, out *printer) *cobra.Command {
	var held bool
	cmd := &cobra.Command{
		Use:   "config --state DIR",
		Short: "Check, update the device's configuration, and print every value it sees",
		Long: `Check, fetch the configuration documents whose digest changed, verify them against the
signed answer, keep them in the state directory, and print every value the device sees, one
"namespace.key = value" a line (the value as JSON), sorted. What changed is said on stderr.

With --held, print the configuration the device holds without asking the server, as an app
reads it with no network: the last one verified.`,
		Example: `  mds device config --state dev1
  mds device config --state dev1 --held --json`,
		Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			if !held {
				changed, err := updateConfig(cmd, c)
				if err != nil {
					return err
				}
				if len(changed) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "changed: %s\n", strings.Join(changed, ", "))
				}
			}
			values := c.ConfigValues()
			return out.print(cmd, values, func(w io.Writer) { printConfigValues(w, values) })
		}),
	}
	cmd.Flags().BoolVar(&held, "held", false, "print the configuration held, without checking")
	return cmd
}

// updateConfig checks and makes the device's configuration the answer's.
func updateConfig(cmd *cobra.Command, c *sdk.Client) ([]string, error) {
	a, err := c.Check(cmd.Context())
	if err != nil {
		return nil, err
	}
	changed, err := c.UpdateConfig(cmd.Context(), a)
	if err != nil {
		return nil, fmt.Errorf("updating the configuration: %w", err)
	}
	return changed, nil
}

func printConfigValues(w io.Writer, values sdk.ConfigValues) {
	if len(values) == 0 {
		fmt.Fprintln(w, "no configuration: the app has none for this device")
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(w, "%s = %s\n", k, values[k])
	}
}
