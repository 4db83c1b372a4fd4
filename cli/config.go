package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

// configCmd reads and writes remote configuration: namespaces of typed
// keys, where every write is a new version for every device, their
// history, diffs and rollbacks, and gray changes, which a task releases
// like any other package.
func configCmd() *cobra.Command {
	cmd, newClient, out := group("config", "Read and change remote configuration: typed keys in versioned namespaces, released gray like everything else")
	cmd.AddCommand(configGetCmd(newClient, out), configSetCmd(newClient, out), configDeleteCmd(newClient, out),
		configApplyCmd(newClient, out), configHistoryCmd(newClient, out), configDiffCmd(newClient, out),
		configRollbackCmd(newClient, out), configGrayCmd(newClient, out))
	return cmd
}

func configGetCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "get --app APP [NAMESPACE [--version N]]",
		Short: "Show the current keys of every namespace, or of one namespace at a version",
		Args:  cobra.MaximumNArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			if len(args) == 0 {
				if cmd.Flags().Changed("version") {
					return fmt.Errorf("--version is a version of one namespace: name the namespace")
				}
				res, err := c.Config(cmd.Context(), app)
				if err != nil {
					return err
				}
				return out.print(cmd, res, func(w io.Writer) {
					if len(res.Versions) == 0 {
						fmt.Fprintf(w, "no configuration yet: mds config set --app %s NAMESPACE KEY=VALUE --type TYPE\n", app)
					}
					for i, v := range res.Versions {
						if i > 0 {
							fmt.Fprintln(w)
						}
						printConfigVersion(w, v)
					}
				})
			}
			v, err := c.ConfigVersion(cmd.Context(), app, args[0], version)
			if err != nil {
				return err
			}
			return out.print(cmd, v, func(w io.Writer) { printConfigVersion(w, v) })
		}),
	}
	appFlag(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "this version instead of the current one")
	return cmd
}

// printConfigVersion prints a version of a namespace and its keys.
func printConfigVersion(w io.Writer, v *mds.ConfigVersion) {
	fmt.Fprintf(w, "%s: version %d, %s by %s\n", v.Namespace, v.Number, when(v.CreatedAt), v.CreatedBy)
	if len(v.Keys) == 0 {
		fmt.Fprintln(w, "  no keys")
		return
	}
	fmt.Fprintln(w, "NAME\tTYPE\tVALUE")
	for _, name := range slices.Sorted(maps.Keys(v.Keys)) {
		k := v.Keys[name]
		fmt.Fprintf(w, "%s\t%s\t%s\n", name, keyType(k), short(k.Value))
	}
}

// keyType is a key's type as tables show it: with ", schema" when its
// values are held to one.
func keyType(k mds.ConfigKey) string {
	if len(k.Schema) > 0 {
		return string(k.Type) + ", schema"
	}
	return string(k.Type)
}

// short is a value as a table shows it: its JSON, cut to one readable
// line (--json prints it whole).
func short(raw json.RawMessage) string {
	const max = 60
	s := string(raw)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

// keyFlags describe the keys a command sets: --type, --schema and
// --description, which make each key exactly as given rather than keeping
// what it has.
type keyFlags struct {
	typ, schema, description string
}

func (f *keyFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.typ, "type", "", "the keys' type: string, integer, float, boolean or json; needed for new keys, and replaces an existing key's schema and description")
	fs.StringVar(&f.schema, "schema", "", "with --type json: a file holding the JSON Schema (JSON or YAML) the values must fit")
	fs.StringVar(&f.description, "description", "", "with --type: what the keys are for")
}

// keys parses KEY=VALUE arguments of namespace ns, whose current keys
// are cur. A VALUE is JSON of the key's type; one that is not JSON is
// taken as text when the key is a string, so that title=Sale needs no
// quotes. A key without --type keeps its type, schema and description.
func (f *keyFlags) keys(ns string, args []string, cur mds.ConfigKeys) (map[string]api.SetKey, error) {
	typ := mds.ConfigType(f.typ)
	if typ != "" {
		if err := typ.Validate(); err != nil {
			return nil, fmt.Errorf("--type: %s", mds.ErrorMessage(err))
		}
	}
	var schema json.RawMessage
	if f.schema != "" {
		b, err := readJSONFile(f.schema)
		if err != nil {
			return nil, fmt.Errorf("--schema: %w", err)
		}
		schema = b
	}
	if typ == "" && (schema != nil || f.description != "") {
		return nil, fmt.Errorf("--schema and --description replace a key's: give --type with them")
	}
	out := map[string]api.SetKey{}
	for _, arg := range args {
		name, value, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, fmt.Errorf("%q: write KEY=VALUE, the value as JSON of the key's type", arg)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("key %s is given twice", name)
		}
		t := typ
		if t == "" {
			t = cur[name].Type
		}
		raw := json.RawMessage(value)
		if !json.Valid(raw) {
			switch t {
			case mds.ConfigString:
				raw, _ = json.Marshal(value)
			case "":
				return nil, fmt.Errorf("%s.%s is a new key: give its type with --type (string, integer, float, boolean or json)", ns, name)
			default:
				return nil, fmt.Errorf("%s.%s is of type %s, and %q is not JSON: give the value as JSON, like %s", ns, name, t, value, typeExample(t))
			}
		}
		k := api.SetKey{Value: raw}
		if typ != "" {
			k.Type, k.Schema, k.Description = typ, schema, f.description
		}
		out[name] = k
	}
	return out, nil
}

func typeExample(t mds.ConfigType) string {
	switch t {
	case mds.ConfigInteger:
		return "42"
	case mds.ConfigFloat:
		return "0.5"
	case mds.ConfigBoolean:
		return "true"
	}
	return `{"title":"Sale"}`
}

// readJSONFile reads a file of JSON, or of YAML unless it is named .json,
// as JSON.
func readJSONFile(name string) (json.RawMessage, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		if err := jsonProblem(b, json.Unmarshal(b, new(any))); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return b, nil
	}
	b, err = yamlToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// currentVersion is the current version of namespace ns: a version 0
// without keys when it has none yet.
func currentVersion(ctx context.Context, c *client.Client, app, ns string) (*mds.ConfigVersion, error) {
	if err := mds.ValidConfigNamespace(ns); err != nil {
		return nil, errors.New(mds.ErrorMessage(err))
	}
	v, err := c.ConfigVersion(ctx, app, ns, 0)
	if mds.ErrorCode(err) == mds.ENOTFOUND {
		// The app may be what is missing: the write that follows says so.
		return &mds.ConfigVersion{Namespace: ns, Keys: mds.ConfigKeys{}}, nil
	}
	return v, err
}

func configSetCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var (
		keys    keyFlags
		message string
		base    int64
	)
	cmd := &cobra.Command{
		Use:   "set --app APP NAMESPACE KEY=VALUE… [--type T] [--message M]",
		Short: "Set keys of a namespace: one new version, for every device at once",
		Long: `Set keys of a namespace, making one new version that every device gets at once (under the gray
changes in force for it). A VALUE is JSON of the key's type: "text", 42, 0.5, true, or any JSON;
for a string key, a VALUE that is not JSON is taken as the text itself. A new key needs --type;
an existing key keeps its type, schema and description unless --type is given, which makes the
key exactly as the flags say.`,
		Example: `  mds config set --app shop checkout new_flow=true retries=3
  mds config set --app shop checkout title="Summer sale" --type string --message "banner copy"
  mds config set --app shop checkout banner='{"color":"red"}' --type json --schema banner.schema.json`,
		Args: cobra.MinimumNArgs(2),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			ns := args[0]
			cur, err := currentVersion(cmd.Context(), c, app, ns)
			if err != nil {
				return err
			}
			set, err := keys.keys(ns, args[1:], cur.Keys)
			if err != nil {
				return err
			}
			e := api.NamespaceEdit{Set: set}
			if cmd.Flags().Changed("base") {
				e.Base = &base
			}
			res, err := c.EditConfig(cmd.Context(), app, api.EditConfig{Message: message, Namespaces: map[string]api.NamespaceEdit{ns: e}})
			if err != nil {
				return err
			}
			return printWritten(cmd, c, out, app, cur, res)
		}),
	}
	appFlag(cmd)
	keys.register(cmd)
	cmd.Flags().StringVar(&message, "message", "", "why: kept in the namespace's history")
	cmd.Flags().Int64Var(&base, "base", 0, "the version this change was made against: refused if the namespace has moved on")
	return cmd
}

func configDeleteCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var message string
	cmd := &cobra.Command{
		Use:   "delete --app APP NAMESPACE KEY… [--message M]",
		Short: "Delete keys of a namespace: one new version, for every device at once",
		Args:  cobra.MinimumNArgs(2),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			ns := args[0]
			cur, err := currentVersion(cmd.Context(), c, app, ns)
			if err != nil {
				return err
			}
			res, err := c.EditConfig(cmd.Context(), app, api.EditConfig{Message: message,
				Namespaces: map[string]api.NamespaceEdit{ns: {Delete: args[1:]}}})
			if err != nil {
				return err
			}
			return printWritten(cmd, c, out, app, cur, res)
		}),
	}
	appFlag(cmd)
	cmd.Flags().StringVar(&message, "message", "", "why: kept in the namespace's history")
	return cmd
}

// printWritten prints the version a write of namespace before.Namespace
// made, with what changed from the version before it, or that the write
// changed nothing.
func printWritten(cmd *cobra.Command, c *client.Client, out *printer, app string, before *mds.ConfigVersion, res *api.ConfigVersions) error {
	if len(res.Versions) == 0 {
		return out.print(cmd, res, func(w io.Writer) {
			fmt.Fprintf(w, "%s: unchanged at version %d\n", before.Namespace, before.Number)
		})
	}
	v := res.Versions[0]
	prev := before
	if prev.Number != v.Number-1 {
		// Another write came between the read and this one: what this
		// version changed is against the one just before it.
		var err error
		if prev, err = c.ConfigVersion(cmd.Context(), app, v.Namespace, v.Number-1); err != nil {
			return err
		}
	}
	return out.print(cmd, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s: version %d\n", v.Namespace, v.Number)
		printKeyDiffs(w, keyDiffs(prev.Keys, v.Keys))
	})
}

// keyDiffs is how keys differ from from to to, in name order, values and
// schemas compared as canonical JSON.
func keyDiffs(from, to mds.ConfigKeys) []api.KeyDiff { return api.DiffKeys(from, to, sameKey) }

// sameKey reports whether a and b define a key alike, whatever the
// spacing and member order of their JSON.
func sameKey(a, b mds.ConfigKey) bool {
	return a.Type == b.Type && a.Description == b.Description && sameJSON(a.Value, b.Value) && sameJSON(a.Schema, b.Schema)
}

func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	ca, err := mds.CheckConfigValue(mds.ConfigJSON, a)
	if err != nil {
		ca = a
	}
	cb, err := mds.CheckConfigValue(mds.ConfigJSON, b)
	if err != nil {
		cb = b
	}
	return bytes.Equal(ca, cb)
}

// printKeyDiffs prints one line a key: + added, - deleted, ~ changed.
func printKeyDiffs(w io.Writer, diffs []api.KeyDiff) {
	for _, d := range diffs {
		switch {
		case d.From == nil:
			fmt.Fprintf(w, "  + %s\t%s\t%s\n", d.Key, keyType(*d.To), short(d.To.Value))
		case d.To == nil:
			fmt.Fprintf(w, "  - %s\t%s\t%s\n", d.Key, keyType(*d.From), short(d.From.Value))
		default:
			f, t := d.From, d.To
			typ := string(t.Type)
			if f.Type != t.Type {
				typ = string(f.Type) + " → " + string(t.Type)
			}
			var what []string
			if f.Type != t.Type || !sameJSON(f.Value, t.Value) {
				what = append(what, short(f.Value)+" → "+short(t.Value))
			}
			switch {
			case len(f.Schema) == 0 && len(t.Schema) > 0:
				what = append(what, "schema added")
			case len(f.Schema) > 0 && len(t.Schema) == 0:
				what = append(what, "schema removed")
			case !sameJSON(f.Schema, t.Schema):
				what = append(what, "schema changed")
			}
			if f.Description != t.Description {
				what = append(what, fmt.Sprintf("description %q → %q", f.Description, t.Description))
			}
			fmt.Fprintf(w, "  ~ %s\t%s\t%s\n", d.Key, typ, strings.Join(what, "; "))
		}
	}
}

// ---- apply

// configFile is what mds config apply reads: whole namespaces, their
// keys' values canonical.
type configFile struct {
	message    string
	namespaces map[string]mds.ConfigKeys
}

func configApplyCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var (
		file, message string
		dryRun        bool
	)
	cmd := &cobra.Command{
		Use:   "apply --app APP --file config.yaml [--message M] [--dry-run]",
		Short: "Make namespaces hold exactly the keys a YAML or JSON file gives them",
		Long: `Make each namespace the file names hold exactly the keys it gives: keys it lacks are deleted, and
namespaces it does not name are left alone. Each namespace changed gets one new version, all in one
write, made against the version read first: a change someone makes in between is refused, not undone.

  message: summer sale             # optional, kept in the history (--message wins)
  namespaces:
    checkout:
      new_flow: {type: boolean, value: true}
      banner:
        type: json
        description: the home banner
        schema: {type: object, required: [title]}
        value: {title: Sale, color: red}

A file named .json is read as JSON, any other as YAML; "-" reads standard input.`,
		Example: `  mds config apply --app shop --file config.yaml --dry-run
  mds config apply --app shop --file config.yaml --message "summer sale"`,
		Args: cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			if file == "" {
				return fmt.Errorf("give the file with --file")
			}
			f, err := readConfigFile(cmd, file)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("message") {
				message = f.message
			}
			cur, err := c.Config(cmd.Context(), app)
			if err != nil {
				return err
			}
			current := map[string]*mds.ConfigVersion{}
			for _, v := range cur.Versions {
				current[v.Namespace] = v
			}
			plan := configPlan{DryRun: dryRun, Namespaces: []api.ConfigDiff{}}
			edit := api.EditConfig{Message: message, Namespaces: map[string]api.NamespaceEdit{}}
			for _, ns := range slices.Sorted(maps.Keys(f.namespaces)) {
				before, keys := current[ns], f.namespaces[ns]
				if before == nil {
					before = &mds.ConfigVersion{Namespace: ns}
				}
				d := api.ConfigDiff{Namespace: ns, From: before.Number, To: before.Number, Keys: keyDiffs(before.Keys, keys)}
				if len(d.Keys) > 0 {
					d.To++
					base := before.Number
					e := api.NamespaceEdit{Base: &base, Replace: true, Set: map[string]api.SetKey{}}
					for name, k := range keys {
						if old, ok := before.Keys[name]; ok && sameKey(old, k) {
							k = old // as stored: only what changes is written differently
						}
						e.Set[name] = api.SetKey{Type: k.Type, Value: k.Value, Schema: k.Schema, Description: k.Description}
					}
					edit.Namespaces[ns] = e
				}
				plan.Namespaces = append(plan.Namespaces, d)
			}
			if !dryRun && len(edit.Namespaces) > 0 {
				res, err := c.EditConfig(cmd.Context(), app, edit)
				if err != nil {
					return err
				}
				for _, v := range res.Versions {
					for i := range plan.Namespaces {
						if plan.Namespaces[i].Namespace == v.Namespace {
							plan.Namespaces[i].To = v.Number
						}
					}
				}
			}
			return out.print(cmd, plan, plan.print)
		}),
	}
	appFlag(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "the configuration file, YAML or JSON")
	cmd.Flags().StringVar(&message, "message", "", "why: kept in the history of every version made")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change, and write nothing")
	return cmd
}

// configPlan is what apply changes (or would, in a dry run), namespace by
// namespace: From is the version read, To the one made (From when
// unchanged).
type configPlan struct {
	DryRun     bool             `json:"dry_run"`
	Namespaces []api.ConfigDiff `json:"namespaces"`
}

func (p configPlan) print(w io.Writer) {
	for _, d := range p.Namespaces {
		switch {
		case len(d.Keys) == 0:
			fmt.Fprintf(w, "%s: unchanged at version %d\n", d.Namespace, d.From)
		case p.DryRun:
			fmt.Fprintf(w, "%s: would make version %d\n", d.Namespace, d.To)
		default:
			fmt.Fprintf(w, "%s: version %d\n", d.Namespace, d.To)
		}
		printKeyDiffs(w, d.Keys)
	}
	if p.DryRun {
		fmt.Fprintln(w, "dry run: nothing written")
	}
}

// readConfigFile reads a configuration file: JSON when named .json, YAML
// otherwise, standard input for "-".
func readConfigFile(cmd *cobra.Command, name string) (*configFile, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		if err := jsonProblem(b, json.Unmarshal(b, new(any))); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else if b, err = yamlToJSON(b); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f, err := parseConfigFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// jsonProblem says where in doc a JSON syntax error is, by line.
func jsonProblem(doc []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(doc[:min(int(se.Offset), len(doc))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, se)
	}
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

// parseConfigFile reads doc, a configuration file as JSON, checking
// every name, type and value, so that a mistake is named before anything
// is written.
func parseConfigFile(doc []byte) (*configFile, error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(doc, &top) != nil || top == nil {
		return nil, fmt.Errorf("a configuration file is a mapping with namespaces (and, optionally, a message)")
	}
	for name := range top {
		if name != "namespaces" && name != "message" {
			return nil, fmt.Errorf("unknown field %q: a configuration file holds namespaces and, optionally, a message", name)
		}
	}
	f := &configFile{namespaces: map[string]mds.ConfigKeys{}}
	if raw, ok := top["message"]; ok && json.Unmarshal(raw, &f.message) != nil {
		return nil, fmt.Errorf("message must be text")
	}
	var nss map[string]json.RawMessage
	if json.Unmarshal(top["namespaces"], &nss) != nil || len(nss) == 0 {
		return nil, fmt.Errorf("namespaces must map each namespace's name to its keys, and name at least one")
	}
	for _, ns := range slices.Sorted(maps.Keys(nss)) {
		if err := mds.ValidConfigNamespace(ns); err != nil {
			return nil, errors.New(mds.ErrorMessage(err))
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(nss[ns], &keys); err != nil || keys == nil {
			return nil, fmt.Errorf("namespace %s: give its keys as a mapping of key name to type and value (write %s: {} to delete every key)", ns, ns)
		}
		f.namespaces[ns] = mds.ConfigKeys{}
		for _, name := range slices.Sorted(maps.Keys(keys)) {
			k, err := parseFileKey(name, keys[name])
			if err != nil {
				return nil, fmt.Errorf("namespace %s: key %s: %w", ns, name, err)
			}
			f.namespaces[ns][name] = k
		}
	}
	return f, nil
}

// parseFileKey reads one key of a configuration file, its value made
// canonical.
func parseFileKey(name string, raw json.RawMessage) (mds.ConfigKey, error) {
	var k mds.ConfigKey
	if err := mds.ValidConfigKey(name); err != nil {
		return k, errors.New(mds.ErrorMessage(err))
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return k, fmt.Errorf("give the key as its type and value, like {type: boolean, value: true}")
	}
	for field := range fields {
		switch field {
		case "type", "value", "schema", "description":
		default:
			return k, fmt.Errorf("unknown field %q: a key has type, value, schema and description", field)
		}
	}
	if json.Unmarshal(fields["type"], &k.Type) != nil || k.Type == "" {
		return k, fmt.Errorf("give its type: string, integer, float, boolean or json")
	}
	if err := k.Type.Validate(); err != nil {
		return k, errors.New(mds.ErrorMessage(err))
	}
	var ok bool
	if k.Value, ok = fields["value"]; !ok {
		return k, fmt.Errorf("give its value")
	}
	if d, ok := fields["description"]; ok && json.Unmarshal(d, &k.Description) != nil {
		return k, fmt.Errorf("the description must be text")
	}
	if s, ok := fields["schema"]; ok && string(s) != "null" {
		if k.Type != mds.ConfigJSON {
			return k, fmt.Errorf("only json keys take a schema; this one is %s", k.Type)
		}
		k.Schema = s
	}
	v, err := mds.CheckConfigValue(k.Type, k.Value)
	if err != nil {
		return k, errors.New(mds.ErrorMessage(err))
	}
	k.Value = v
	if err := k.Validate(name); err != nil {
		return k, errors.New(strings.TrimPrefix(mds.ErrorMessage(err), "key "+name+": "))
	}
	return k, nil
}

// yamlToJSON converts a YAML document to JSON, keeping numbers as written
// where JSON can, and scalars YAML would read as times as their text.
func yamlToJSON(b []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("the file is empty")
	}
	var buf bytes.Buffer
	if err := writeYAML(&buf, doc.Content[0], "", 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Bounds of a YAML document converted: aliases may repeat a node many
// times over.
const (
	maxYAMLDepth = 100
	maxYAMLJSON  = 64 << 20
)

// writeYAML writes node n, at path in the document, as JSON.
func writeYAML(buf *bytes.Buffer, n *yaml.Node, path string, depth int) error {
	fail := func(format string, args ...any) error {
		where := fmt.Sprintf("line %d", n.Line)
		if path != "" {
			where += " (" + path + ")"
		}
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	if depth > maxYAMLDepth {
		return fail("nested more than %d deep", maxYAMLDepth)
	}
	if buf.Len() > maxYAMLJSON {
		return fail("the document is over %d bytes as JSON", maxYAMLJSON)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return writeYAML(buf, n.Alias, path, depth+1)
	case yaml.MappingNode:
		buf.WriteByte('{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			for k.Kind == yaml.AliasNode {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode {
				return fail("a mapping's keys are names, not collections")
			}
			if k.ShortTag() == "!!merge" {
				return fail("merge keys (<<) are not supported; write the keys out")
			}
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			if seen[k.Value] {
				return fmt.Errorf("line %d (%s): %s is given twice", k.Line, sub, k.Value)
			}
			seen[k.Value] = true
			if i > 0 {
				buf.WriteByte(',')
			}
			name, _ := json.Marshal(k.Value)
			buf.Write(name)
			buf.WriteByte(':')
			if err := writeYAML(buf, n.Content[i+1], sub, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeYAML(buf, item, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!null":
			buf.WriteString("null")
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return fail("%v", err)
			}
			buf.WriteString(strconv.FormatBool(b))
		case "!!int", "!!float":
			// Only numbers as JSON writes them: YAML reads 010 as 8,
			// 0x1f, 1_000 and .inf too, which a reader of the file would
			// not take for those values.
			if !isJSONNumber(n.Value) {
				return fail("%s is a number as YAML writes one, not as JSON does: write it in plain decimal, or quote it for text", n.Value)
			}
			buf.WriteString(n.Value) // as written: 1.10 stays 1.10
		case "!!str", "!!timestamp", "!!binary":
			b, _ := json.Marshal(n.Value)
			buf.Write(b)
		default:
			return fail("values tagged %s are not supported", tag)
		}
	default:
		return fail("unexpected YAML node")
	}
	return nil
}

// isJSONNumber reports whether s is a number as JSON writes one.
func isJSONNumber(s string) bool {
	if s == "" || s[0] != '-' && (s[0] < '0' || s[0] > '9') {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// ---- history, diff, rollback

func configHistoryCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "history --app APP NAMESPACE",
		Short: "List a namespace's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			res, err := c.ConfigHistory(cmd.Context(), app, args[0], page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "VERSION\tWHEN\tBY\tKEYS\tMESSAGE")
				for _, v := range res.Versions {
					msg, _, _ := strings.Cut(v.Message, "\n")
					msg = strings.ReplaceAll(msg, "\t", " ")
					switch {
					case v.Restores > 0:
						msg = strings.TrimSpace(fmt.Sprintf("[restores v%d] %s", v.Restores, msg))
					case v.Promotes > 0:
						msg = strings.TrimSpace(fmt.Sprintf("[promotes task %d] %s", v.Promotes, msg))
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", v.Number, when(v.CreatedAt), v.CreatedBy, v.KeyCount, msg)
				}
			})
		}),
	}
	appFlag(cmd)
	page.register(cmd)
	return cmd
}

func configDiffCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff --app APP NAMESPACE V1 [V2]",
		Short: "Show how a namespace changed from version V1 to V2 (the current one by default)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			var v [2]int64
			for i, s := range args[1:] {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("version %q: give a version's number, as mds config history shows it", s)
				}
				v[i] = n
			}
			d, err := c.ConfigDiff(cmd.Context(), app, args[0], v[0], v[1])
			if err != nil {
				return err
			}
			return out.print(cmd, d, func(w io.Writer) {
				if len(d.Keys) == 0 {
					fmt.Fprintf(w, "%s: versions %d and %d hold the same keys\n", d.Namespace, d.From, d.To)
					return
				}
				fmt.Fprintf(w, "%s: version %d → %d\n", d.Namespace, d.From, d.To)
				printKeyDiffs(w, d.Keys)
			})
		}),
	}
	appFlag(cmd)
	return cmd
}

func configRollbackCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var (
		to      int64
		message string
	)
	cmd := &cobra.Command{
		Use:   "rollback --app APP NAMESPACE --to V [--message M]",
		Short: "Make a new version of a namespace that holds what version V held",
		Args:  cobra.ExactArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			if to <= 0 {
				return fmt.Errorf("give the version to restore with --to, as mds config history shows it")
			}
			ns := args[0]
			res, err := c.RollbackConfig(cmd.Context(), app, ns, api.Rollback{To: to, Message: message})
			if err != nil {
				return err
			}
			if len(res.Versions) == 0 {
				return fmt.Errorf("the server made no version of %s", ns)
			}
			v := res.Versions[0]
			prev, err := c.ConfigVersion(cmd.Context(), app, ns, v.Number-1)
			if err != nil {
				return err
			}
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "%s: version %d restores version %d\n", ns, v.Number, v.Restores)
				printKeyDiffs(w, keyDiffs(prev.Keys, v.Keys))
			})
		}),
	}
	appFlag(cmd)
	cmd.Flags().Int64Var(&to, "to", 0, "the version to restore")
	cmd.Flags().StringVar(&message, "message", "", `why (default "roll back to version V")`)
	return cmd
}

// ---- gray changes

func configGrayCmd(newClient func() (*client.Client, error), out *printer) *cobra.Command {
	var (
		keys    keyFlags
		target  targetingFlags
		deletes []string
		message string
	)
	cmd := &cobra.Command{
		Use:   "gray --app APP NAMESPACE [KEY=VALUE…] [--delete KEY…] (--percent P | --whitelist ID | --window-start T … | --rule R)",
		Short: "Release a change of a namespace to some devices first: a live gray task, to promote or stop",
		Long: `Release a change of a namespace to the devices a targeting admits, over the namespace's current
version: a package of kind config, delivered by a live task like any other. Values are given as
to mds config set. Promoting the task without rules makes the change the namespace's next version,
for every device; stopping it takes the change back.`,
		Example: `  mds config gray --app shop checkout new_flow=true --percent 5 --message "try the new flow"
  mds config gray --app shop checkout --delete banner --whitelist 3 --rule "os_version VERSION_GTE 14"`,
		Args: cobra.MinimumNArgs(1),
		RunE: onApp(newClient, func(cmd *cobra.Command, args []string, app string, c *client.Client) error {
			ns := args[0]
			if len(args) == 1 && len(deletes) == 0 {
				return fmt.Errorf("give keys to set (KEY=VALUE) or to delete (--delete KEY)")
			}
			var tg mds.Targeting
			if err := target.apply(cmd, &tg); err != nil {
				return err
			}
			if !tg.HasGates() && !tg.HasRules() {
				return fmt.Errorf("a gray change needs an audience: give --percent, --whitelist, a window or rules; to change %s for every device, use mds config set", ns)
			}
			cur, err := currentVersion(cmd.Context(), c, app, ns)
			if err != nil {
				return err
			}
			set, err := keys.keys(ns, args[1:], cur.Keys)
			if err != nil {
				return err
			}
			p, err := c.CreateConfigChange(cmd.Context(), app, api.ConfigChange{Namespace: ns, Set: set, Delete: deletes, Message: message})
			if err != nil {
				return err
			}
			t, err := c.CreateTask(cmd.Context(), app, api.CreateTask{PackageID: p.ID, Targeting: tg, Release: true})
			if err != nil {
				return fmt.Errorf("the change is package %d, but no task releases it: %w\n"+
					"release it with mds task create --app %s --package %d --release and a gray gate, or delete it with mds package delete --app %s %d",
					p.ID, err, app, p.ID, app, p.ID)
			}
			spec := p.Config
			if spec == nil {
				return fmt.Errorf("package %d is not a configuration change", p.ID)
			}
			base := cur
			if base.Number != spec.Base {
				if base, err = c.ConfigVersion(cmd.Context(), app, ns, spec.Base); err != nil {
					return err
				}
			}
			after := (&mds.ConfigEdit{Set: spec.Set, Delete: spec.Delete}).Apply(base.Keys)
			return out.print(cmd, t, func(w io.Writer) {
				fmt.Fprintf(w, "task\t%d (%s, %s)\npackage\t%d\n", t.ID, t.Status, t.Stage, p.ID)
				describeTargeting(w, &t.Targeting)
				if tg.HasRules() {
					fmt.Fprintf(w, "promote\tmds task promote --app %s %d: every device the rules admit gets it\n", app, t.ID)
				} else {
					fmt.Fprintf(w, "promote\tmds task promote --app %s %d: it becomes %s's next version, for every device\n", app, t.ID, ns)
				}
				fmt.Fprintf(w, "abandon\tmds task stop --app %s %d\n", app, t.ID)
				fmt.Fprintf(w, "%s: change over version %d\n", ns, spec.Base)
				printKeyDiffs(w, keyDiffs(base.Keys, after))
			})
		}),
	}
	appFlag(cmd)
	keys.register(cmd)
	target.register(cmd, false)
	cmd.Flags().StringArrayVar(&deletes, "delete", nil, "a key the change's audience does without; repeatable")
	cmd.Flags().StringVar(&message, "message", "", "what the change is for: kept in the history of the version a promotion makes")
	return cmd
}
