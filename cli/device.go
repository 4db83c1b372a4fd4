package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/signing"
)

// deviceCmd acts as a device, through package sdk, exactly as an app
// would: to try a release before phones see it, or to script a device in
// tests. The device's context and trusted keys are given once and
// remembered in its state directory, beside the SDK's own state.
func deviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: check for deliveries, apply hotpatches, launch, confirm, install offline packages",
		Long: `Act as a device, with the device SDK, over a state directory (--state DIR).

The device's context (--app-key, --platform, --app-version, ...) and the keys
it trusts (--server-key, --team-key) are remembered in DIR/device.json the
first time they are given, so later commands need only --state; a flag given
again replaces what was remembered (--attr, --server-key and --team-key
replace the whole list). Without --device-id a random one is made once.`,
		Example: `  mds device check --state dev1 --app-key ak_... --platform android --app-version 2.0.0 \
      --server-key deploy.pub.pem --team-key team.pub.pem
  mds device apply --state dev1
  mds device start --state dev1
  mds device mark-healthy --state dev1`,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       unknownSubcommand,
		SuggestionsMinimumDistance: 2,
	}
	f := &deviceFlags{}
	f.register(cmd)
	out := &printer{}
	cmd.PersistentFlags().BoolVar(&out.json, "json", false, "print the answer as JSON")

	check := &cobra.Command{
		Use:   "check --state DIR",
		Short: "Check once and print what the verified answer says",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			a, err := c.Check(cmd.Context())
			if err != nil {
				return err
			}
			return out.print(cmd, a, func(w io.Writer) { printAnswer(w, a, c.Status()) })
		}),
	}
	apply := &cobra.Command{
		Use:   "apply --state DIR",
		Short: "Check, then follow the answer's hotpatch instruction: apply, roll back, or nothing",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			a, err := c.Check(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Apply(cmd.Context(), a)
			if err != nil {
				return err
			}
			return out.print(cmd, r, func(w io.Writer) { fmt.Fprintln(w, describeResult(r)) })
		}),
	}
	start := &cobra.Command{
		Use:   "start --state DIR",
		Short: "Launch the app: say which patch runs, reverting one launched before and never marked healthy",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			st, err := c.Start()
			if err != nil {
				return err
			}
			return out.print(cmd, st, func(w io.Writer) {
				if st.Reverted != nil {
					fmt.Fprintf(w, "reverted %s: it was launched and never marked healthy, and is not applied again\n", patchName(st.Reverted))
				}
				fmt.Fprintln(w, describeRunning(st))
			})
		}),
	}
	status := &cobra.Command{
		Use:   "status --state DIR",
		Short: "Print the device's state: its patches, bad patches, the last answer",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			st := c.Status()
			return out.print(cmd, st, func(w io.Writer) { printStatus(w, st, f.saved) })
		}),
	}
	healthy := &cobra.Command{
		Use:   "mark-healthy --state DIR",
		Short: "Confirm the current patch: the app runs well with it, so no launch reverts it",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			before := c.Status()
			if err := c.MarkHealthy(); err != nil {
				return err
			}
			st := c.Status()
			return out.print(cmd, st, func(w io.Writer) {
				switch {
				case before.Pending && !st.Pending:
					fmt.Fprintf(w, "%s marked healthy\n", patchName(st.Current))
				case st.Pending:
					fmt.Fprintf(w, "%s is applied and not started, so not confirmed: the app runs %s; mds device start runs it, then confirm it\n",
						patchName(st.Current), patchName(st.Running))
				default:
					fmt.Fprintf(w, "nothing pending: running %s\n", patchName(st.Current))
				}
			})
		}),
	}
	watch := &cobra.Command{
		Use:   "watch --state DIR",
		Short: "Watch for changes and follow each answer as apply does, until interrupted",
		Long: `Keep a watch open and, each time the server sends this device a new answer,
follow its hotpatch instruction as apply does, printing what was done, and keep its
configuration as device config does, saying which keys changed. A rollback
reaches the device within a second of the release being rolled back, without a
check. When the node cannot stream, the device checks instead and watches again
later; it reconnects by itself after a failure or a node shutting down.`,
		Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *sdk.Client) error {
			// An apply that fails is reported, and the answer handed again
			// after a backoff: the watch goes on.
			err := c.Watch(cmd.Context(), sdk.WatchConfig{}, func(a *sdk.Answer) error {
				// The configuration is followed whatever becomes of the
				// patch, and the other way round.
				changed, configErr := c.UpdateConfig(cmd.Context(), a)
				if len(changed) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "configuration changed: %s\n", strings.Join(changed, ", "))
				}
				r, err := c.Apply(cmd.Context(), a)
				if err != nil {
					return errors.Join(err, configErr)
				}
				if err := out.print(cmd, r, func(w io.Writer) { fmt.Fprintln(w, describeResult(r)) }); err != nil {
					return err
				}
				return configErr
			}, func(err error) { fmt.Fprintln(cmd.ErrOrStderr(), "mds device watch:", err) })
			if errors.Is(err, context.Canceled) {
				return nil // interrupted
			}
			return err
		}),
	}
	cmd.AddCommand(check, apply, start, status, healthy, watch, deviceOfflineCmd(f, out), deviceConfigCmd(f, out))
	return cmd
}

// deviceFile is DIR/device.json: what the device flags said, so that
// they are given once. Keys are kept as PEM text, not file names: the
// state directory then stands alone, as an app build embeds its keys.
type deviceFile struct {
	Server     string     `json:"server,omitempty"` // "" for --server's default
	Device     mds.Device `json:"device"`
	ServerKeys []string   `json:"server_keys"`
	TeamKeys   []string   `json:"team_keys"`
}

const deviceFileName = "device.json"

// deviceFlags are the flags of every device command.
type deviceFlags struct {
	state, server                                                string
	appKey, platform, appVersion, deviceID, userID, model, brand string
	osVersion, region, city, channel, network, language          string
	build                                                        int64
	attrs, serverKeys, teamKeys                                  []string
	saved                                                        *deviceFile // what open resolved, for status
}

// register gives cmd the flags, persistent so that every subcommand has
// them.
func (f *deviceFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.state, "state", "", "the device's state directory (required; created if needed)")
	fl.StringVar(&f.server, "server", Env("MDS_SERVER", "http://127.0.0.1:8080"), "mds device API URL (MDS_SERVER)")
	fl.StringVar(&f.appKey, "app-key", "", "the app's key (mds app show APP --field key)")
	fl.StringVar(&f.platform, "platform", "", "android, ios or harmony")
	fl.StringVar(&f.appVersion, "app-version", "", "the installed app version, e.g. 2.0.0")
	fl.Int64Var(&f.build, "build", 0, "the installed build number")
	fl.StringVar(&f.deviceID, "device-id", "", "the device ID (a random one is made once if never given)")
	fl.StringVar(&f.userID, "user-id", "", "the signed-in user")
	fl.StringVar(&f.model, "model", "", "device model")
	fl.StringVar(&f.brand, "brand", "", "device brand")
	fl.StringVar(&f.osVersion, "os-version", "", "OS version")
	fl.StringVar(&f.region, "region", "", "region")
	fl.StringVar(&f.city, "city", "", "city")
	fl.StringVar(&f.channel, "channel", "", "distribution channel")
	fl.StringVar(&f.network, "network", "", "wifi, 2g, 3g, 4g, 5g or ethernet")
	fl.StringVar(&f.language, "language", "", "BCP 47 language, e.g. zh-CN")
	fl.StringArrayVar(&f.attrs, "attr", nil, "custom attribute NAME=VALUE; repeat for more")
	fl.StringArrayVar(&f.serverKeys, "server-key", nil, "PEM file of the trusted deployment keys (signs answers: mds keys server-public); repeatable")
	fl.StringArrayVar(&f.teamKeys, "team-key", nil, "PEM file of a trusted team key (signs hotpatches); repeat for more")
}

// open merges the flags given into DIR/device.json, saves it if they
// changed it, and opens the SDK client it describes, which holds the
// directory until it is closed.
// run makes a RunE that opens the device, runs fn with it, and closes it.
func (f *deviceFlags) run(fn func(cmd *cobra.Command, c *sdk.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		c, err := f.open(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(cmd, c)
	}
}

func (f *deviceFlags) open(cmd *cobra.Command) (*sdk.Client, error) {
	if f.state == "" {
		return nil, errors.New("give the device's state directory with --state DIR; it is created if needed and remembers the device")
	}
	if err := os.MkdirAll(f.state, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(f.state, deviceFileName)
	df := &deviceFile{}
	switch b, err := os.ReadFile(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, df); err != nil {
			return nil, fmt.Errorf("%s does not parse (%v): fix it, or remove it and give the device flags again", path, err)
		}
	}
	changed, err := f.merge(cmd, df)
	if err != nil {
		return nil, err
	}
	if df.Device.DeviceID == "" {
		var b [8]byte
		rand.Read(b[:])
		df.Device.DeviceID, changed = "cli-"+hex.EncodeToString(b[:]), true
	}
	if changed {
		b, err := json.MarshalIndent(df, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("saving %s: %w", path, err)
		}
	}
	f.saved = df
	cfg := sdk.Config{Server: df.Server, Device: df.Device}
	if cfg.Server == "" {
		cfg.Server = f.server
	}
	for _, miss := range []struct{ flag, value string }{
		{"--app-key", df.Device.AppKey}, {"--platform", string(df.Device.Platform)}, {"--app-version", df.Device.AppVersion},
	} {
		if miss.value == "" {
			return nil, fmt.Errorf("give the device's %s once; it is remembered in %s", miss.flag, path)
		}
	}
	if len(df.ServerKeys) == 0 {
		return nil, fmt.Errorf("give the deployment's public key with --server-key FILE once (it is remembered in %s): answers are trusted only when signed by it", path)
	}
	if cfg.ServerKeys, err = parseKeys(df.ServerKeys, path, "server_keys"); err != nil {
		return nil, err
	}
	if cfg.TeamKeys, err = parseKeys(df.TeamKeys, path, "team_keys"); err != nil {
		return nil, err
	}
	return sdk.Open(f.state, cfg)
}

// merge sets in df what the flags given say, and reports whether that
// changed anything.
func (f *deviceFlags) merge(cmd *cobra.Command, df *deviceFile) (bool, error) {
	flags := cmd.Flags()
	before, _ := json.Marshal(df)
	d := &df.Device
	for name, set := range map[string]func(){
		"app-key": func() { d.AppKey = f.appKey }, "platform": func() { d.Platform = mds.Platform(f.platform) },
		"app-version": func() { d.AppVersion = f.appVersion }, "build": func() { d.Build = f.build },
		"device-id": func() { d.DeviceID = f.deviceID }, "user-id": func() { d.UserID = f.userID },
		"model": func() { d.Model = f.model }, "brand": func() { d.Brand = f.brand },
		"os-version": func() { d.OSVersion = f.osVersion }, "region": func() { d.Region = f.region },
		"city": func() { d.City = f.city }, "channel": func() { d.Channel = f.channel },
		"network": func() { d.Network = f.network }, "language": func() { d.Language = f.language },
		"server": func() { df.Server = f.server },
	} {
		if flags.Changed(name) {
			set()
		}
	}
	if flags.Changed("attr") {
		d.Attributes = nil
		for _, kv := range f.attrs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return false, fmt.Errorf("--attr %q: give NAME=VALUE", kv)
			}
			if d.Attributes == nil {
				d.Attributes = map[string]string{}
			}
			d.Attributes[k] = v
		}
	}
	for _, keys := range []struct {
		flag  string
		files []string
		into  *[]string
	}{{"server-key", f.serverKeys, &df.ServerKeys}, {"team-key", f.teamKeys, &df.TeamKeys}} {
		if !flags.Changed(keys.flag) {
			continue
		}
		*keys.into = nil
		for _, file := range keys.files {
			pems, err := readKeys(file)
			if err != nil {
				return false, fmt.Errorf("--%s %s: %w", keys.flag, file, err)
			}
			*keys.into = append(*keys.into, pems...)
		}
	}
	// What the SDK fills in at each check is not the device's to keep.
	d.Hotpatch, d.DeviceTime = nil, nil
	after, _ := json.Marshal(df)
	return string(before) != string(after), nil
}

// readKeys reads the public keys of a PEM file, one or more (mds keys
// server-public prints every deployment key, two during a rotation), and
// returns each in PEM. Anything in the file that is not a public key is
// an error, not the end of the keys.
func readKeys(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	keys, err := signing.ParsePublicKeysPEM(b)
	if err != nil {
		return nil, err
	}
	pems := make([]string, len(keys))
	for i, k := range keys {
		pems[i] = string(k.MarshalPEM())
	}
	return pems, nil
}

func parseKeys(pems []string, path, field string) ([]*signing.PublicKey, error) {
	keys := make([]*signing.PublicKey, 0, len(pems))
	for i, p := range pems {
		k, err := signing.ParsePublicKeyPEM([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("%s: %s[%d]: %w", path, field, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func patchName(p *sdk.Patch) string {
	if p == nil {
		return "no patch"
	}
	return fmt.Sprintf("patch %d (v%d)", p.ID, p.PatchVersion)
}

func printAnswer(w io.Writer, a *sdk.Answer, st sdk.Status) {
	fresh := "new"
	if a.NotModified {
		fresh = "not modified: the stored answer stands"
	}
	fmt.Fprintf(w, "answer\tversion %d (%s)\nexpires\t%s\n", a.Version, fresh, when(a.Expires))
	if u := a.Upgrade; u == nil {
		fmt.Fprintln(w, "upgrade\tnone")
	} else {
		build := ""
		if u.Build != 0 {
			build = fmt.Sprintf(" build %d", u.Build)
		}
		remind := "no reminder now"
		if u.Remind {
			remind = "remind now"
		}
		fmt.Fprintf(w, "upgrade\t%s%s, %s mode, %s, from task %d (%s)\n", u.Version, build, u.Mode, remind, u.TaskID, u.Stage)
		fmt.Fprintf(w, "install\t%s\n", u.URL)
		if u.Notes != "" {
			fmt.Fprintf(w, "notes\t%s\n", strings.ReplaceAll(u.Notes, "\n", "\n\t"))
		}
	}
	fmt.Fprintf(w, "hotpatch\t%s\n", describeInstruction(a.Hotpatch, st))
	if h := a.Hotpatch; h != nil && h.Notes != "" {
		fmt.Fprintf(w, "notes\t%s\n", strings.ReplaceAll(h.Notes, "\n", "\n\t"))
	}
	fmt.Fprintf(w, "running\t%s\n", patchName(st.Running))
}

// describeInstruction says what a hotpatch instruction asks, and whether
// it asks anything of this device. The answer is for the patch that runs,
// which differs from the current one while that is staged: applied, and
// not yet started.
func describeInstruction(h *sdk.HotpatchInstruction, st sdk.Status) string {
	runs := func(id int64) bool { return st.Running != nil && st.Running.ID == id || st.Running == nil && id == 0 }
	staged := st.Current != nil && (st.Running == nil || st.Running.ID != st.Current.ID)
	switch {
	case h == nil:
		if staged {
			return fmt.Sprintf("nothing to do: keep running %s, and not %s, applied and not started", patchName(st.Running), patchName(st.Current))
		}
		return "nothing to do"
	case h.Action == sdk.ActionApply:
		s := fmt.Sprintf("apply patch %d (v%d), %d bytes, from task %d (%s)", h.PatchID, h.PatchVersion, h.Size, h.TaskID, h.Stage)
		switch {
		case slices.Contains(st.Bad, h.PatchID):
			s += ": bad on this device, it will be skipped"
		case runs(h.PatchID):
			s += ": running it already"
		case staged && st.Current.ID == h.PatchID:
			s += ": applied already, it runs from the next start"
		}
		return s
	case h.Action == sdk.ActionRollback:
		s := "roll back to no patch"
		if h.PatchID != 0 {
			s = fmt.Sprintf("roll back to patch %d (v%d)", h.PatchID, h.PatchVersion)
		}
		if runs(h.PatchID) {
			s += ": running it already"
		}
		return s
	}
	return fmt.Sprintf("%q, an action this SDK does not know: ignored", h.Action)
}

func describeResult(r sdk.Result) string {
	switch r.Outcome {
	case sdk.OutcomeApplied:
		how := "downloaded and verified"
		if !r.Downloaded {
			how = "kept from before"
		}
		return fmt.Sprintf("applied %s into %s (%s); it runs from the next start, and is reverted unless marked healthy",
			patchName(r.Patch), r.Patch.Dir, how)
	case sdk.OutcomeRolledBack:
		s := fmt.Sprintf("rolled back from %s to %s", patchName(r.From), patchName(r.Patch))
		if r.Patch != nil {
			s += " in " + r.Patch.Dir
		}
		if r.Bad != 0 {
			s += fmt.Sprintf(" (not to patch %d, which is bad on this device)", r.Bad)
		}
		return s
	case sdk.OutcomeSkippedBad:
		return fmt.Sprintf("skipped bad patch %d: it was reverted on this device before; running %s", r.Bad, patchName(r.Patch))
	case sdk.OutcomeCancelled:
		return fmt.Sprintf("cancelled %s, applied and never started: the answer is to keep running %s", patchName(r.From), patchName(r.Patch))
	}
	return "nothing to do: running " + patchName(r.Patch)
}

func describeRunning(st sdk.Status) string {
	if st.Current == nil {
		return "running no patch"
	}
	s := fmt.Sprintf("running %s from %s", patchName(st.Current), st.Current.Dir)
	if st.Pending {
		s += " (pending: mds device mark-healthy confirms it; the next start without that reverts it)"
	}
	return s
}

func printStatus(w io.Writer, st sdk.Status, df *deviceFile) {
	current := patchName(st.Current)
	if st.Current != nil {
		current += "\t" + st.Current.Dir
		switch {
		case st.Pending && st.Launched:
			current += " (pending, launched: the next start reverts it unless marked healthy)"
		case st.Pending:
			current += " (pending: not launched yet)"
		}
	}
	fmt.Fprintf(w, "current\t%s\n", current)
	previous := patchName(st.Previous)
	if st.Previous != nil {
		previous += "\t" + st.Previous.Dir
	}
	fmt.Fprintf(w, "previous\t%s\n", previous)
	fmt.Fprintf(w, "running\t%s\n", patchName(st.Running))
	bad := "none"
	if len(st.Bad) > 0 {
		ids := make([]string, len(st.Bad))
		for i, id := range st.Bad {
			ids[i] = fmt.Sprint(id)
		}
		bad = strings.Join(ids, ", ")
	}
	fmt.Fprintf(w, "bad\t%s\n", bad)
	if st.AnswerVersion == 0 && st.AnswerExpires.IsZero() {
		fmt.Fprintln(w, "answer\tnone accepted yet")
	} else {
		fmt.Fprintf(w, "answer\tversion %d, expires %s\n", st.AnswerVersion, when(st.AnswerExpires))
	}
	if df != nil {
		d := df.Device
		fmt.Fprintf(w, "device\t%s, %s %s build %d, app %s\n", d.DeviceID, d.Platform, d.AppVersion, d.Build, d.AppKey)
		fmt.Fprintf(w, "keys\t%d server, %d team\n", len(df.ServerKeys), len(df.TeamKeys))
	}
}
