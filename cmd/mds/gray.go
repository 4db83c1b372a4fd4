package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/release"
)

// parseRule reads a rule as people write it on a command line:
//
//	[not] FIELD OPERATOR[/i] [VALUE[,VALUE…]]
//
// e.g. "os_version VERSION_GTE 12", "city IN Shanghai,New York",
// "not model STR_STARTS_WITH/i sm-". "/i" compares case-insensitively.
// A rule that starts with "{" is read as the API's JSON instead, for values
// that contain commas.
func parseRule(s string) (mds.Rule, error) {
	var r mds.Rule
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return r, fmt.Errorf("rule %s: %w", s, err)
		}
		return r, nil
	}
	if rest, ok := strings.CutPrefix(s, "not "); ok {
		r.Inverted, s = true, strings.TrimSpace(rest)
	}
	parts := strings.SplitN(s, " ", 3)
	if len(parts) < 2 {
		return r, fmt.Errorf("rule %q: write FIELD OPERATOR VALUES, e.g. \"os_version VERSION_GTE 12\"", s)
	}
	r.Field = parts[0]
	op, fold := strings.CutSuffix(parts[1], "/i")
	r.Operator, r.CaseInsensitive = mds.Operator(strings.ToUpper(op)), fold
	r.Values = []string{}
	if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
		for v := range strings.SplitSeq(parts[2], ",") {
			r.Values = append(r.Values, strings.TrimSpace(v))
		}
	}
	return r, r.Validate()
}

func parseRules(texts []string) ([]mds.Rule, error) {
	rules := []mds.Rule{}
	for _, t := range texts {
		r, err := parseRule(t)
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

func (f *targetingFlags) register(fs *pflag.FlagSet, editing bool) {
	fs.StringArrayVar(&f.rules, "rule", nil, `filter rule, ANDed with the others: "[not] FIELD OPERATOR[/i] VALUES", e.g. "os_version VERSION_GTE 12"; repeatable`)
	fs.Int64SliceVar(&f.ruleSets, "ruleset", nil, "ID of a saved rule set to AND in; repeatable")
	fs.Int64SliceVar(&f.whitelists, "whitelist", nil, "gray gate: ID of a whitelist whose users or devices get it; repeatable")
	fs.Float64Var(&f.percent, "percent", 0, "gray gate: sticky percentage of devices, 0-100 in steps of 0.01")
	fs.StringArrayVar(&f.ramp, "ramp", nil, "gray gate: scheduled step TIME=PERCENT (RFC 3339 time), e.g. 2026-12-01T10:00:00Z=10; repeatable")
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
func (f *targetingFlags) apply(fs *pflag.FlagSet, tg *mds.Targeting) error {
	changed := fs.Changed
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
			tg.Rollout.Percent = f.percent
		}
		if changed("stickiness") {
			tg.Rollout.Stickiness = mds.Stickiness(f.stickiness)
		}
		if changed("ramp") {
			tg.Rollout.Ramp = nil
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
func targetCmd(newClient func() (*apiClient, error), out printer) *cobra.Command {
	var f targetingFlags
	cmd := &cobra.Command{
		Use:   "target --app APP TASK [flags]",
		Short: "Change a task's rules and gray gates; a live task changes at the next check",
		Example: `  mds task target --app shop 7 --percent 25
  mds task target --app shop 7 --rule "os_version VERSION_GTE 12" --rule "network IN wifi"
  mds task target --app shop 7 --no-window --whitelist 3`,
		Args: cobra.ExactArgs(1),
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
			if _, err := c.do(cmd.Context(), http.MethodGet, appPath(app, fmt.Sprintf("/tasks/%d", id)), nil, &t); err != nil {
				return err
			}
			if err := f.apply(cmd.Flags(), &t.Targeting); err != nil {
				return err
			}
			return c.show(cmd, out, http.MethodPut, appPath(app, fmt.Sprintf("/tasks/%d/targeting", id)), t.Targeting, &t,
				func(w io.Writer) { printTask(w, &t) })
		},
	}
	appFlag(cmd)
	f.register(cmd.Flags(), true)
	return cmd
}

func describeTargeting(w io.Writer, tg *mds.Targeting) {
	for _, r := range tg.Rules {
		not := ""
		if r.Inverted {
			not = "not "
		}
		fold := ""
		if r.CaseInsensitive {
			fold = "/i"
		}
		fmt.Fprintf(w, "rule\t%s%s %s%s %s\n", not, r.Field, r.Operator, fold, strings.Join(r.Values, ","))
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
			fmt.Fprintf(w, "  ramp\t%v%% from %s\n", s.Percent, s.At.Local().Format("2006-01-02 15:04"))
		}
	}
	if win := tg.Window; win != nil {
		fmt.Fprintf(w, "window\t%d devices, %s to %s\n", win.Cap, win.Start.Local().Format("2006-01-02 15:04"), win.End.Local().Format("2006-01-02 15:04"))
	}
}

// ---- rule sets

func ruleSetCmd() *cobra.Command {
	cmd, newClient, out := group("ruleset", "Save named, reusable rule sets")
	var name string
	var rules []string
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
		RunE: func(cmd *cobra.Command, args []string) error {
			parsed, err := parseRules(rules)
			if err != nil {
				return err
			}
			app, c, err := appClient(cmd, newClient)
			if err != nil {
				return err
			}
			var rs mds.RuleSet
			return c.show(cmd, out, http.MethodPost, appPath(app, "/rule-sets"), map[string]any{"name": args[0], "rules": parsed}, &rs, printSet(&rs))
		},
	}
	appFlag(create)
	create.Flags().StringArrayVar(&rules, "rule", nil, `"[not] FIELD OPERATOR[/i] VALUES"; repeatable`)
	update := &cobra.Command{
		Use:   "update --app APP ID [--name NAME] [--rule RULE…]",
		Short: "Change a rule set; every task using it follows at the next check",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			var rs mds.RuleSet
			path := appPath(app, "/rule-sets/"+url.PathEscape(args[0]))
			if _, err := c.do(cmd.Context(), http.MethodGet, path, nil, &rs); err != nil {
				return err
			}
			if cmd.Flags().Changed("name") {
				rs.Name = name
			}
			if cmd.Flags().Changed("rule") {
				parsed, err := parseRules(rules)
				if err != nil {
					return err
				}
				rs.Rules = parsed
			}
			return c.show(cmd, out, http.MethodPut, path, map[string]any{"name": rs.Name, "rules": rs.Rules}, &rs, printSet(&rs))
		}),
	}
	appFlag(update)
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringArrayVar(&rules, "rule", nil, "the new rules, replacing the old; repeatable")
	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List rule sets",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *apiClient) error {
			var res struct {
				RuleSets []mds.RuleSet `json:"rule_sets"`
			}
			return c.show(cmd, out, http.MethodGet, appPath(app, "/rule-sets"), nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tRULES")
				for _, rs := range res.RuleSets {
					fmt.Fprintf(w, "%d\t%s\t%d\n", rs.ID, rs.Name, len(rs.Rules))
				}
			})
		}),
	}
	appFlag(list)
	show := &cobra.Command{
		Use:   "show --app APP ID",
		Short: "Show a rule set",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			var rs mds.RuleSet
			return c.show(cmd, out, http.MethodGet, appPath(app, "/rule-sets/"+url.PathEscape(args[0])), nil, &rs, printSet(&rs))
		}),
	}
	appFlag(show)
	cmd.AddCommand(create, update, list, show, deleteCmd(newClient, "rule-sets", "rule set"))
	return cmd
}

// deleteCmd deletes an object of an app by ID.
func deleteCmd(newClient func() (*apiClient, error), collection, what string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete --app APP ID",
		Short: "Delete a " + what + " that no running task uses",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			if _, err := c.do(cmd.Context(), http.MethodDelete, appPath(app, "/"+collection+"/"+url.PathEscape(args[0])), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", what, args[0])
			return nil
		}),
	}
	appFlag(cmd)
	return cmd
}

// ---- whitelists

func printWhitelist(w io.Writer, l *mds.Whitelist) {
	fmt.Fprintf(w, "whitelist\t%d %s\nkind\t%s\nentries\t%d (%d regular expressions)\nversion\t%d\n", l.ID, l.Name, l.Kind, l.Entries, l.Patterns, l.Version)
}

func whitelistCmd() *cobra.Command {
	cmd, newClient, out := group("whitelist", "Manage reusable lists of user or device IDs")
	var kind, file string
	var page int
	upload := func(cmd *cobra.Command, c *apiClient, app, id, file string, l *mds.Whitelist) ([]byte, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPut, c.base+appPath(app, "/whitelists/"+url.PathEscape(id)+"/entries"), f)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "text/plain")
		return c.send(req, l)
	}
	create := &cobra.Command{
		Use:   "create --app APP NAME --kind user|device [--file FILE]",
		Short: "Create a whitelist, optionally filled from a file",
		Long: `Create a whitelist. A file has one ID per line, or is CSV whose first column is the ID;
blank lines, lines starting with # and a header line are skipped, duplicates count once,
and an entry re:<expression> matches IDs by regular expression. Up to 1,000,000 entries.`,
		Example: "  mds whitelist create --app shop testers --kind user --file testers.csv",
		Args:    cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			var l mds.Whitelist
			raw, err := c.do(cmd.Context(), http.MethodPost, appPath(app, "/whitelists"), map[string]any{"name": args[0], "kind": kind}, &l)
			if err != nil {
				return err
			}
			if file != "" {
				if raw, err = upload(cmd, c, app, strconv.FormatInt(l.ID, 10), file, &l); err != nil {
					return fmt.Errorf("whitelist %d was created empty: %w", l.ID, err)
				}
			}
			return out.print(cmd, raw, func(w io.Writer) { printWhitelist(w, &l) })
		}),
	}
	appFlag(create)
	create.Flags().StringVar(&kind, "kind", "", "user (entries are user_id) or device (device_id)")
	create.Flags().StringVar(&file, "file", "", "entries to fill it with")
	replace := &cobra.Command{
		Use:   "upload --app APP ID FILE",
		Short: "Replace a whitelist's entries with a file; a bad line changes nothing",
		Args:  cobra.ExactArgs(2),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			var l mds.Whitelist
			raw, err := upload(cmd, c, app, args[0], args[1], &l)
			if err != nil {
				return err
			}
			return out.print(cmd, raw, func(w io.Writer) { printWhitelist(w, &l) })
		}),
	}
	appFlag(replace)
	edit := func(use, field, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " --app APP ID ENTRY…",
			Short: short,
			Args:  cobra.MinimumNArgs(2),
			RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
				var l mds.Whitelist
				return c.show(cmd, out, http.MethodPatch, appPath(app, "/whitelists/"+url.PathEscape(args[0])+"/entries"),
					map[string]any{field: args[1:]}, &l, func(w io.Writer) { printWhitelist(w, &l) })
			}),
		}
		appFlag(c)
		return c
	}
	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List whitelists",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *apiClient) error {
			var res struct{ Whitelists []mds.Whitelist }
			return c.show(cmd, out, http.MethodGet, appPath(app, "/whitelists"), nil, &res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tKIND\tENTRIES\tVERSION")
				for _, l := range res.Whitelists {
					fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\n", l.ID, l.Name, l.Kind, l.Entries, l.Version)
				}
			})
		}),
	}
	appFlag(list)
	show := &cobra.Command{
		Use:   "show --app APP ID [--entries N]",
		Short: "Show a whitelist and its first entries",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *apiClient) error {
			var l mds.Whitelist
			path := appPath(app, "/whitelists/"+url.PathEscape(args[0]))
			if page == 0 {
				return c.show(cmd, out, http.MethodGet, path, nil, &l, func(w io.Writer) { printWhitelist(w, &l) })
			}
			var res struct{ Entries []string }
			return c.show(cmd, out, http.MethodGet, path+"/entries?limit="+strconv.Itoa(page), nil, &res, func(w io.Writer) {
				for _, e := range res.Entries {
					fmt.Fprintln(w, e)
				}
			})
		}),
	}
	appFlag(show)
	show.Flags().IntVar(&page, "entries", 0, "list this many entries (in order) instead of the summary")
	cmd.AddCommand(create, replace, edit("add", "add", "Add entries"), edit("remove", "remove", "Remove entries"),
		list, show, deleteCmd(newClient, "whitelists", "whitelist"))
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
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
		app, c, err := appClient(cmd, newClient)
		if err != nil {
			return err
		}
		var res struct {
			Tasks []release.Explanation
		}
		return c.show(cmd, out, http.MethodPost, appPath(app, "/explain"), map[string]any{"device": d, "ip": ip}, &res, func(w io.Writer) {
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
				fmt.Fprintf(w, "task %d (%s %s)\t%s\n", t.TaskID, t.Version, t.Stage, verdict)
				for _, s := range t.Steps {
					mark := "✗"
					if s.Passed {
						mark = "✓"
					}
					fmt.Fprintf(w, "  %s %s\t%s\n", mark, s.What, s.Detail)
				}
			}
		})
	}
	return cmd
}

func previewCmd() *cobra.Command {
	var rules []string
	var ruleSets []int64
	cmd, newClient, out := group("preview --app APP --rule RULE… [--ruleset ID…]",
		"Estimate the share of recently seen devices that rules match")
	cmd.Example = `  mds preview --app shop --rule "os_version VERSION_GTE 12" --rule "city IN Shanghai,Beijing"`
	cmd.Args = cobra.NoArgs
	appFlag(cmd)
	cmd.Flags().StringArrayVar(&rules, "rule", nil, `"[not] FIELD OPERATOR[/i] VALUES"; repeatable`)
	cmd.Flags().Int64SliceVar(&ruleSets, "ruleset", nil, "saved rule set ID; repeatable")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		parsed, err := parseRules(rules)
		if err != nil {
			return err
		}
		app, c, err := appClient(cmd, newClient)
		if err != nil {
			return err
		}
		var res struct {
			Sampled, Matched int
			Share            float64
		}
		return c.show(cmd, out, http.MethodPost, appPath(app, "/preview"), map[string]any{"rules": parsed, "rule_sets": ruleSets}, &res, func(w io.Writer) {
			if res.Sampled == 0 {
				fmt.Fprintln(w, "no devices of this app have checked in recently on this server")
				return
			}
			fmt.Fprintf(w, "%d of %d recently seen devices match (%.1f%%)\n", res.Matched, res.Sampled, 100*res.Share)
		})
	}
	return cmd
}
