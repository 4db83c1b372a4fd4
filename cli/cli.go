// Package cli is the mds command line for people and scripts: every command
// but serve is a client of the management API, through package client.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds/client"
)

// Commands returns the client commands, for a root command to hold.
func Commands() []*cobra.Command {
	return []*cobra.Command{appCmd(), packageCmd(), taskCmd(), whitelistCmd(), ruleSetCmd(), explainCmd(), previewCmd(), tokenCmd(), keysCmd(), hotpatchCmd(), offlineCmd(), deviceCmd(), configCmd()}
}

// Root returns the mds root command with the client commands and extra
// (mds serve).
func Root(version string, extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:           "mds",
		Short:         "Mobile Delivery Service: ship upgrades to apps already installed on phones",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(extra...)
	root.AddCommand(Commands()...)
	return root
}

// Run executes one command line of the client commands; tests call it.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := Root("test")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// Env returns the environment variable key, or def when it is unset.
func Env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// group makes a parent command whose children share --server, --token and
// --json. A group run on its own, or with a subcommand it lacks, fails
// with what to type instead: cobra would print its help and succeed,
// hiding a typo from scripts.
func group(use, short string) (*cobra.Command, func() (*client.Client, error), *printer) {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: unknownSubcommand, SuggestionsMinimumDistance: 2}
	cmd.FParseErrWhitelist.UnknownFlags = true
	newClient := clientFlags(cmd)
	p := &printer{}
	cmd.PersistentFlags().BoolVar(&p.json, "json", false, "print the answer as JSON")
	return cmd, newClient, p
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return fmt.Errorf("%s needs a subcommand: %s (see %s --help)", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	} else {
		msg += "; its subcommands are " + strings.Join(names, ", ")
	}
	return fmt.Errorf("%s", msg)
}

// clientFlags adds --server and --token to cmd and returns a constructor
// for the client they describe.
func clientFlags(cmd *cobra.Command) func() (*client.Client, error) {
	var server, token string
	f := cmd.PersistentFlags()
	f.StringVar(&server, "server", Env("MDS_SERVER", "http://127.0.0.1:8080"), "mds server URL (MDS_SERVER)")
	f.StringVar(&token, "token", "", "API token; prefer the MDS_TOKEN environment variable, which stays out of process lists")
	return func() (*client.Client, error) {
		if token == "" {
			token = Env("MDS_TOKEN", "")
		}
		if token == "" {
			return nil, fmt.Errorf("no token: set MDS_TOKEN (mds serve prints the admin token on first start)")
		}
		return client.New(server, token), nil
	}
}

func appFlag(cmd *cobra.Command) {
	cmd.Flags().String("app", Env("MDS_APP", ""), "app slug (MDS_APP)")
}

// onApp makes a RunE that first resolves the command's --app and a client,
// as nearly every command needs.
func onApp(newClient func() (*client.Client, error), run func(cmd *cobra.Command, args []string, app string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		app := cmd.Flag("app").Value.String()
		if app == "" {
			return fmt.Errorf("name the app with --app or MDS_APP")
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		return run(cmd, args, app, c)
	}
}

// withClient makes a RunE that first makes the client.
func withClient(newClient func() (*client.Client, error), run func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		return run(cmd, args, c)
	}
}

// printer writes answers as JSON (--json), one field of them (--field, on
// show commands), or a table for people.
type printer struct {
	json  bool
	field string
}

// fieldFlag gives a show command --field.
func (p *printer) fieldFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.field, "field", "", "print only this field of the answer (e.g. key), for scripts")
}

func (p *printer) print(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	switch {
	case p.field != "":
		s, err := field(v, p.field)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, s)
		return err
	case p.json:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := b.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// field returns the top-level JSON field name of v: text as it is,
// anything else as JSON.
func field(v any, name string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("--field applies to objects")
	}
	raw, ok := m[name]
	if !ok {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		return "", fmt.Errorf("the answer has no field %q; it has %s", name, strings.Join(names, ", "))
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return string(raw), nil
}

// pageFlags give a list command --limit and --after.
type pageFlags struct {
	limit int
	after string
}

func (f *pageFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.limit, "limit", 100, "list at most this many")
	cmd.Flags().StringVar(&f.after, "after", "", "list from after this cursor (printed when a list has more)")
}

func (f *pageFlags) page() client.Page { return client.Page{After: f.after, Limit: f.limit} }

// more tells people, on stderr, how to get the rest of a list.
func more(cmd *cobra.Command, p *printer, next string) {
	if next != "" && !p.json {
		fmt.Fprintf(cmd.ErrOrStderr(), "more: run again with --after %s\n", next)
	}
}

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

// deleteCmd deletes an object of an app by ID.
func deleteCmd(newClient func() (*client.Client, error), what string, del func(ctx context.Context, c *client.Client, app string, id int64) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete --app APP ID",
		Short: "Delete a " + what,
		Args:  cobra.ExactArgs(1),
		RunE: onID(newClient, what, func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			if err := del(cmd.Context(), c, app, id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d deleted\n", what, id)
			return nil
		}),
	}
	appFlag(cmd)
	return cmd
}

// parseID reads the numeric ID of a what from an argument.
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s %q: give its numeric ID, as the list command shows it", what, s)
	}
	return id, nil
}

// onID makes a RunE for a command on one object of an app, named by its
// numeric ID: it resolves --app, the client and the ID first.
func onID(newClient func() (*client.Client, error), what string, run func(cmd *cobra.Command, app string, c *client.Client, id int64) error) func(*cobra.Command, []string) error {
	return onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
		id, err := parseID(what, args[0])
		if err != nil {
			return err
		}
		return run(cmd, app, c, id)
	})
}

// showCmd is `show --app APP ID [--field NAME]` for an object of an app.
func showCmd[T any](newClient func() (*client.Client, error), out *printer, what, short string,
	get func(ctx context.Context, c *client.Client, app string, id int64) (*T, error), table func(*T) func(io.Writer)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show --app APP ID [--field NAME]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: onID(newClient, what, func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			v, err := get(cmd.Context(), c, app, id)
			if err != nil {
				return err
			}
			return out.print(cmd, v, table(v))
		}),
	}
	appFlag(cmd)
	out.fieldFlag(cmd)
	return cmd
}
