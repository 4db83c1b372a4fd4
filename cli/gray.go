package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

func parseRules(texts []string) ([]mds.Rule, error) {
	rules := []mds.Rule{}
	for _, t := range texts {
		r, err := mds.ParseRule(t)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// targetingFlags are the flags that describe a targeting, shared by
// `task create` and `task target`.
type targetingFlags struct {
	rules, ramp                          []string
	ruleSets, whitelists                 []int64
	percent                              float64
	stickiness, windowStart, windowEnd   string
	cap                                  int
	noRules, noRollout, noWindow, noList bool
}

func (f *targetingFlags) register(cmd *cobra.Command, editing bool) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.rules, "rule", nil, `filter rule, ANDed with the others: "[not] FIELD OPERATOR[/i] VALUES", e.g. "os_version VERSION_GTE 12"; repeatable`)
	fs.Int64SliceVar(&f.ruleSets, "ruleset", nil, "ID of a saved rule set to AND in; repeatable")
	fs.Int64SliceVar(&f.whitelists, "whitelist", nil, "gray gate: ID of a whitelist whose users or devices get it; repeatable")
	fs.Float64Var(&f.percent, "percent", 0, "gray gate: sticky percentage of devices, 0-100 in steps of 0.01")
	fs.StringArrayVar(&f.ramp, "ramp", nil, "gray gate: scheduled step TIME=PERCENT (RFC 3339 time), e.g. 2026-12-01T10:00:00Z=10; repeatable; instead of --percent")
	fs.StringVar(&f.stickiness, "stickiness", "", "what the percentage keeps stable: device (default) or user")
	fs.StringVar(&f.windowStart, "window-start", "", "gray gate: capped window opens (RFC 3339 time)")
	fs.StringVar(&f.windowEnd, "window-end", "", "capped window closes (RFC 3339 time)")
	fs.IntVar(&f.cap, "cap", 0, "capped window: how many devices it admits")
	if editing {
		fs.BoolVar(&f.noRules, "no-rules", false, "remove the rules and rule sets")
		fs.BoolVar(&f.noRollout, "no-rollout", false, "remove the percentage and ramp")
		fs.BoolVar(&f.noWindow, "no-window", false, "remove the capped window")
		fs.BoolVar(&f.noList, "no-whitelists", false, "remove the whitelists")
	}
}

// apply changes tg by the flags that were given, leaving the rest alone.
// A percentage and a ramp replace each other.
func (f *targetingFlags) apply(cmd *cobra.Command, tg *mds.Targeting) error {
	fs := cmd.Flags()
	changed := fs.Changed
	if changed("percent") && changed("ramp") {
		return fmt.Errorf("give --percent or --ramp, not both: a ramp sets the percentage over time")
	}
	if f.noRules {
		tg.Rules, tg.RuleSets = nil, nil
	}
	if changed("rule") {
		rules, err := parseRules(f.rules)
		if err != nil {
			return err
		}
		tg.Rules = rules
	}
	if changed("ruleset") {
		tg.RuleSets = f.ruleSets
	}
	if f.noList {
		tg.Whitelists = nil
	}
	if changed("whitelist") {
		tg.Whitelists = f.whitelists
	}
	if f.noRollout {
		tg.Rollout = nil
	}
	if changed("percent") || changed("ramp") || changed("stickiness") {
		if tg.Rollout == nil {
			tg.Rollout = &mds.Rollout{}
		}
		if changed("percent") {
			tg.Rollout.Percent, tg.Rollout.Ramp = f.percent, nil
		}
		if changed("stickiness") {
			tg.Rollout.Stickiness = mds.Stickiness(f.stickiness)
		}
		if changed("ramp") {
			tg.Rollout.Percent, tg.Rollout.Ramp = 0, nil
			for _, step := range f.ramp {
				at, pct, ok := strings.Cut(step, "=")
				t, err := time.Parse(time.RFC3339, at)
				p, perr := strconv.ParseFloat(pct, 64)
				if !ok || err != nil || perr != nil {
					return fmt.Errorf("--ramp %q: write TIME=PERCENT, e.g. 2026-12-01T10:00:00Z=10", step)
				}
				tg.Rollout.Ramp = append(tg.Rollout.Ramp, mds.RampStep{At: t, Percent: p})
			}
		}
	}
	if f.noWindow {
		tg.Window = nil
	}
	if changed("window-start") || changed("window-end") || changed("cap") {
		if tg.Window == nil {
			tg.Window = &mds.Window{}
		}
		for name, dst := range map[string]*time.Time{"window-start": &tg.Window.Start, "window-end": &tg.Window.End} {
			if !changed(name) {
				continue
			}
			v, _ := fs.GetString(name)
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fmt.Errorf("--%s %q: give an RFC 3339 time like 2026-12-01T10:00:00Z", name, v)
			}
			*dst = t
		}
		if changed("cap") {
			tg.Window.Cap = f.cap
		}
	}
	return nil
}

// targetCmd edits the targeting of an existing task: it reads the task,
// changes what the flags say and writes the whole targeting back.
func targetCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var f targetingFlags
	cmd := &cobra.Command{
		Use:   "target --app APP TASK [flags]",
		Short: "Change a task's rules and gray gates; a live task changes at the next check",
		Example: `  mds task target --app shop 7 --percent 25
  mds task target --app shop 7 --rule "os_version VERSION_GTE 12" --rule "network IN wifi"
  mds task target --app shop 7 --no-window --whitelist 3`,
		Args: cobra.ExactArgs(1),
		RunE: onID(newClient, "task", func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			t, err := c.Task(cmd.Context(), app, id)
			if err != nil {
				return err
			}
			if err := f.apply(cmd, &t.Targeting); err != nil {
				return err
			}
			if t, err = c.SetTargeting(cmd.Context(), app, id, t.Targeting); err != nil {
				return err
			}
			return out.print(cmd, t, printTask(t))
		}),
	}
	appFlag(cmd)
	f.register(cmd, true)
	return cmd
}

func describeTargeting(w io.Writer, tg *mds.Targeting) {
	for _, r := range tg.Rules {
		fmt.Fprintf(w, "rule\t%s\n", r.String())
	}
	for _, id := range tg.RuleSets {
		fmt.Fprintf(w, "rule set\t%d\n", id)
	}
	for _, id := range tg.Whitelists {
		fmt.Fprintf(w, "whitelist\t%d\n", id)
	}
	if r := tg.Rollout; r != nil {
		if len(r.Ramp) > 0 {
			fmt.Fprintf(w, "rollout\tramped, by %s\n", r.Stickiness)
		} else {
			fmt.Fprintf(w, "rollout\t%v%% by %s\n", r.Percent, r.Stickiness)
		}
		for _, s := range r.Ramp {
			fmt.Fprintf(w, "  ramp\t%v%% from %s\n", s.Percent, when(s.At))
		}
	}
	if win := tg.Window; win != nil {
		fmt.Fprintf(w, "window\t%d devices, %s to %s\n", win.Cap, when(win.Start), when(win.End))
	}
}

// ---- rule sets

func ruleSetCmd() *cobra.Command {
	cmd, newClient, out := group("ruleset", "Save named, reusable rule sets")
	var name string
	var rules []string
	var page pageFlags
	printSet := func(rs *mds.RuleSet) func(io.Writer) {
		return func(w io.Writer) {
			fmt.Fprintf(w, "rule set\t%d %s\n", rs.ID, rs.Name)
			describeTargeting(w, &mds.Targeting{Rules: rs.Rules})
		}
	}
	create := &cobra.Command{
		Use:     "create --app APP NAME --rule RULE…",
		Short:   "Save a rule set",
		Example: `  mds ruleset create --app shop "east china wifi" --rule "region IN CN-31,CN-32,CN-33" --rule "network IN wifi"`,
		Args:    cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			parsed, err := parseRules(rules)
			if err != nil {
				return err
			}
			rs, err := c.CreateRuleSet(cmd.Context(), app, api.SaveRuleSet{Name: args[0], Rules: parsed})
			if err != nil {
				return err
			}
			return out.print(cmd, rs, printSet(rs))
		}),
	}
	appFlag(create)
	create.Flags().StringArrayVar(&rules, "rule", nil, `"[not] FIELD OPERATOR[/i] VALUES"; repeatable`)
	update := &cobra.Command{
		Use:   "update --app APP ID [--name NAME] [--rule RULE…]",
		Short: "Change a rule set; every task using it follows at the next check",
		Args:  cobra.ExactArgs(1),
		RunE: onID(newClient, "rule set", func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			rs, err := c.RuleSet(cmd.Context(), app, id)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("name") {
				rs.Name = name
			}
			if cmd.Flags().Changed("rule") {
				if rs.Rules, err = parseRules(rules); err != nil {
					return err
				}
			}
			if rs, err = c.UpdateRuleSet(cmd.Context(), app, id, api.SaveRuleSet{Name: rs.Name, Rules: rs.Rules}); err != nil {
				return err
			}
			return out.print(cmd, rs, printSet(rs))
		}),
	}
	appFlag(update)
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringArrayVar(&rules, "rule", nil, "the new rules, replacing the old; repeatable")
	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List rule sets",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			res, err := c.RuleSets(cmd.Context(), app, page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tRULES")
				for _, rs := range res.RuleSets {
					fmt.Fprintf(w, "%d\t%s\t%d\n", rs.ID, rs.Name, len(rs.Rules))
				}
			})
		}),
	}
	appFlag(list)
	page.register(list)
	show := showCmd(newClient, out, "rule set", "Show a rule set",
		func(ctx context.Context, c *client.Client, app string, id int64) (*mds.RuleSet, error) {
			return c.RuleSet(ctx, app, id)
		}, printSet)
	del := deleteCmd(newClient, "rule set", func(ctx context.Context, c *client.Client, app string, id int64) error {
		return c.DeleteRuleSet(ctx, app, id)
	})
	del.Short = "Delete a rule set no running task uses"
	cmd.AddCommand(create, update, list, show, del)
	return cmd
}

// ---- whitelists

func printWhitelist(l *mds.Whitelist) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "whitelist\t%d %s\nkind\t%s\nentries\t%d (%d regular expressions)\nversion\t%d\n", l.ID, l.Name, l.Kind, l.Entries, l.Patterns, l.Version)
	}
}

func whitelistCmd() *cobra.Command {
	cmd, newClient, out := group("whitelist", "Manage reusable lists of user or device IDs")
	var kind, file string
	var entries int
	var allowEmpty bool
	var page pageFlags
	upload := func(cmd *cobra.Command, c *client.Client, app string, id int64, file string) (*mds.Whitelist, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return c.ReplaceWhitelist(cmd.Context(), app, id, f, allowEmpty)
	}
	create := &cobra.Command{
		Use:   "create --app APP NAME --kind user|device [--file FILE]",
		Short: "Create a whitelist, optionally filled from a file",
		Long: `Create a whitelist. A file has one ID per line, or is CSV whose first column is the ID;
blank lines, lines starting with # and a header line are skipped, duplicates count once,
and an entry re:<expression> matches IDs by regular expression. Up to 1,000,000 entries.`,
		Example: "  mds whitelist create --app shop testers --kind user --file testers.csv",
		Args:    cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			l, err := c.CreateWhitelist(cmd.Context(), app, api.CreateWhitelist{Name: args[0], Kind: mds.WhitelistKind(kind)})
			if err != nil {
				return err
			}
			if file != "" {
				if l, err = upload(cmd, c, app, l.ID, file); err != nil {
					return fmt.Errorf("the whitelist was created empty: %w", err)
				}
			}
			return out.print(cmd, l, printWhitelist(l))
		}),
	}
	appFlag(create)
	create.Flags().StringVar(&kind, "kind", "", "user (entries are user_id) or device (device_id)")
	create.Flags().StringVar(&file, "file", "", "entries to fill it with")
	replace := &cobra.Command{
		Use:   "upload --app APP ID FILE",
		Short: "Replace a whitelist's entries with a file; a bad line changes nothing",
		Args:  cobra.ExactArgs(2),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			id, err := parseID("whitelist", args[0])
			if err != nil {
				return err
			}
			l, err := upload(cmd, c, app, id, args[1])
			if err != nil {
				return err
			}
			return out.print(cmd, l, printWhitelist(l))
		}),
	}
	appFlag(replace)
	replace.Flags().BoolVar(&allowEmpty, "allow-empty", false, "let a file without entries empty the whitelist")
	edit := func(use, short string, remove bool) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " --app APP ID ENTRY…",
			Short: short,
			Args:  cobra.MinimumNArgs(2),
			RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
				id, err := parseID("whitelist", args[0])
				if err != nil {
					return err
				}
				in := api.EditWhitelist{Add: args[1:]}
				if remove {
					in = api.EditWhitelist{Remove: args[1:]}
				}
				l, err := c.EditWhitelist(cmd.Context(), app, id, in)
				if err != nil {
					return err
				}
				return out.print(cmd, l, printWhitelist(l))
			}),
		}
		appFlag(c)
		return c
	}
	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List whitelists",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			res, err := c.Whitelists(cmd.Context(), app, page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tKIND\tENTRIES\tVERSION")
				for _, l := range res.Whitelists {
					fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\n", l.ID, l.Name, l.Kind, l.Entries, l.Version)
				}
			})
		}),
	}
	appFlag(list)
	page.register(list)
	show := &cobra.Command{
		Use:   "show --app APP ID [--entries N]",
		Short: "Show a whitelist, or its first entries",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			id, err := parseID("whitelist", args[0])
			if err != nil {
				return err
			}
			if entries == 0 {
				l, err := c.Whitelist(cmd.Context(), app, id)
				if err != nil {
					return err
				}
				return out.print(cmd, l, printWhitelist(l))
			}
			res, err := c.WhitelistEntries(cmd.Context(), app, id, client.Page{Limit: entries})
			if err != nil {
				return err
			}
			return out.print(cmd, res, func(w io.Writer) {
				for _, e := range res.Entries {
					fmt.Fprintln(w, e)
				}
			})
		}),
	}
	appFlag(show)
	out.fieldFlag(show)
	show.Flags().IntVar(&entries, "entries", 0, "list this many entries (in order) instead of the summary")
	del := deleteCmd(newClient, "whitelist", func(ctx context.Context, c *client.Client, app string, id int64) error {
		return c.DeleteWhitelist(ctx, app, id)
	})
	del.Short = "Delete a whitelist no running task uses"
	cmd.AddCommand(create, replace, edit("add", "Add entries", false), edit("remove", "Remove entries", true), list, show, del)
	return cmd
}

// ---- explain and preview

func explainCmd() *cobra.Command {
	var d mds.Device
	var attrs []string
	var ip string
	cmd, newClient, out := group("explain --app APP --app-version V --device-id ID [device flags]",
		"Say, for a device, what every live task decides and why")
	cmd.Example = `  mds explain --app shop --platform android --app-version 2.0.1 --device-id 9f8e \
      --user-id alice --os-version 14 --city Shanghai --attr tier=gold`
	cmd.Args = cobra.NoArgs
	cmd.FParseErrWhitelist.UnknownFlags = false
	appFlag(cmd)
	f := cmd.Flags()
	f.StringVar((*string)(&d.Platform), "platform", "", "android, ios or harmony (may be left out for a one-platform app)")
	f.StringVar(&d.AppVersion, "app-version", "", "installed app version")
	f.Int64Var(&d.Build, "build", 0, "installed build number")
	f.StringVar(&d.DeviceID, "device-id", "", "device ID")
	f.StringVar(&d.UserID, "user-id", "", "user ID")
	f.StringVar(&d.Model, "model", "", "device model")
	f.StringVar(&d.Brand, "brand", "", "device brand")
	f.StringVar(&d.OSVersion, "os-version", "", "OS version")
	f.StringVar(&d.Network, "network", "", "wifi, 2g, 3g, 4g, 5g, ethernet")
	f.StringVar(&d.Region, "region", "", "region")
	f.StringVar(&d.City, "city", "", "city")
	f.StringVar(&d.Channel, "channel", "", "distribution channel")
	f.StringVar(&d.Language, "language", "", "language, e.g. zh-CN")
	f.StringArrayVar(&attrs, "attr", nil, "custom attribute NAME=VALUE; repeatable")
	f.StringVar(&ip, "ip", "", "address the check would come from")
	cmd.RunE = onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
		for _, a := range attrs {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("--attr %q: write NAME=VALUE", a)
			}
			if d.Attributes == nil {
				d.Attributes = map[string]string{}
			}
			d.Attributes[k] = v
		}
		res, err := c.Explain(cmd.Context(), app, api.Explain{Device: d, IP: ip})
		if err != nil {
			return err
		}
		return out.print(cmd, res, func(w io.Writer) {
			if len(res.Tasks) == 0 {
				fmt.Fprintln(w, "no live tasks")
			}
			for _, t := range res.Tasks {
				verdict := "no"
				switch {
				case t.Chosen:
					verdict = "YES: this is what the device gets"
				case t.Matched:
					verdict = "yes, but a newer task comes first"
				}
				what := t.Version
				if t.Kind != mds.KindUpgrade {
					what = string(t.Kind) + " " + what
				}
				fmt.Fprintf(w, "task %d (%s %s)\t%s\n", t.TaskID, what, t.Stage, verdict)
				for _, s := range t.Steps {
					mark := "✗"
					if s.Passed {
						mark = "✓"
					}
					fmt.Fprintf(w, "  %s %s\t%s\n", mark, s.What, s.Detail)
				}
			}
			if len(res.Config) > 0 {
				fmt.Fprintln(w, "configuration:")
			}
			for _, ns := range res.Config {
				for _, k := range ns.Keys {
					switch {
					case k.Deleted:
						fmt.Fprintf(w, "  %s.%s\tdeleted by the gray change of task %d\n", ns.Namespace, k.Key, k.TaskID)
					case k.TaskID != 0:
						fmt.Fprintf(w, "  %s.%s = %s\tfrom the gray change of task %d\n", ns.Namespace, k.Key, k.Value, k.TaskID)
					default:
						fmt.Fprintf(w, "  %s.%s = %s\tfrom version %d\n", ns.Namespace, k.Key, k.Value, k.Version)
					}
				}
			}
		})
	})
	return cmd
}

func previewCmd() *cobra.Command {
	var rules []string
	var ruleSets []int64
	cmd, newClient, out := group("preview --app APP --rule RULE… [--ruleset ID…]",
		"Estimate the share of recently seen devices that rules match")
	cmd.Example = `  mds preview --app shop --rule "os_version VERSION_GTE 12" --rule "city IN Shanghai,Beijing"`
	cmd.Args = cobra.NoArgs
	cmd.FParseErrWhitelist.UnknownFlags = false
	appFlag(cmd)
	cmd.Flags().StringArrayVar(&rules, "rule", nil, `"[not] FIELD OPERATOR[/i] VALUES"; repeatable`)
	cmd.Flags().Int64SliceVar(&ruleSets, "ruleset", nil, "saved rule set ID; repeatable")
	cmd.RunE = onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
		parsed, err := parseRules(rules)
		if err != nil {
			return err
		}
		res, err := c.Preview(cmd.Context(), app, api.Preview{Rules: parsed, RuleSets: ruleSets})
		if err != nil {
			return err
		}
		return out.print(cmd, res, func(w io.Writer) {
			if res.Sampled == 0 {
				fmt.Fprintln(w, "no devices of this app have checked in recently on this server")
				return
			}
			fmt.Fprintf(w, "%d of %d recently seen devices match (%.1f%%)\n", res.Matched, res.Sampled, 100*res.Share)
		})
	})
	return cmd
}
