package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

func printApp(a *mds.App) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "app\t%s\nname\t%s\nkey\t%s\n", a.Slug, a.Name, a.Key)
		if a.PreviousKey != "" {
			fmt.Fprintf(w, "previous key\t%s (still accepted; retire it with mds app retire-key)\n", a.PreviousKey)
		}
		fmt.Fprintf(w, "platforms\t%s\n", mds.JoinPlatforms(a.Platforms))
	}
}

func appCmd() *cobra.Command {
	cmd, newClient, out := group("app", "Create, list, change and delete apps")
	var name, slug string
	var platforms []string
	var page pageFlags
	create := &cobra.Command{
		Use:     "create SLUG --platform android [--platform ios …]",
		Short:   "Create an app (needs an admin token)",
		Args:    cobra.ExactArgs(1),
		Example: "  mds app create shop --name Shop --platform android --platform ios",
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			ps := make([]mds.Platform, len(platforms))
			for i, p := range platforms {
				ps[i] = mds.Platform(p)
			}
			a, err := c.CreateApp(cmd.Context(), api.CreateApp{Slug: args[0], Name: name, Platforms: ps})
			if err != nil {
				return err
			}
			return out.print(cmd, a, printApp(a))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringSliceVar(&platforms, "platform", nil, "android, ios or harmony; repeat or separate with commas")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the apps your token can see",
		Args:  cobra.NoArgs,
		RunE: withClient(newClient, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.Apps(cmd.Context(), page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "APP\tNAME\tKEY\tPLATFORMS")
				for _, a := range res.Apps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Slug, a.Name, a.Key, mds.JoinPlatforms(a.Platforms))
				}
			})
		}),
	}
	page.register(list)
	show := &cobra.Command{
		Use:     "show SLUG [--field NAME]",
		Short:   "Show an app",
		Args:    cobra.ExactArgs(1),
		Example: "  APP_KEY=$(mds app show shop --field key)",
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			a, err := c.App(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return out.print(cmd, a, printApp(a))
		}),
	}
	out.fieldFlag(show)
	update := &cobra.Command{
		Use:   "update SLUG [--slug NEW] [--name NAME] [--platform P …]",
		Short: "Rename an app or change its platforms (app admin)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			var in api.UpdateApp
			if cmd.Flags().Changed("slug") {
				in.Slug = &slug
			}
			if cmd.Flags().Changed("name") {
				in.Name = &name
			}
			for _, p := range platforms {
				in.Platforms = append(in.Platforms, mds.Platform(p))
			}
			if in.Slug == nil && in.Name == nil && in.Platforms == nil {
				return fmt.Errorf("say what to change: --slug, --name or --platform")
			}
			a, err := c.UpdateApp(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			return out.print(cmd, a, printApp(a))
		}),
	}
	update.Flags().StringVar(&slug, "slug", "", "new slug")
	update.Flags().StringVar(&name, "name", "", "new display name")
	update.Flags().StringSliceVar(&platforms, "platform", nil, "the platforms, replacing the old ones; repeat or separate with commas")
	keyCmd := func(use, short string, do func(*client.Client, *cobra.Command, string) (*mds.App, error)) *cobra.Command {
		return &cobra.Command{
			Use:   use + " SLUG",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
				a, err := do(c, cmd, args[0])
				if err != nil {
					return err
				}
				return out.print(cmd, a, printApp(a))
			}),
		}
	}
	rotate := keyCmd("rotate-key", "Give the app a new key; installed builds keep working on the old one until it is retired",
		func(c *client.Client, cmd *cobra.Command, app string) (*mds.App, error) {
			return c.RotateAppKey(cmd.Context(), app)
		})
	retire := keyCmd("retire-key", "Stop accepting the app's previous key",
		func(c *client.Client, cmd *cobra.Command, app string) (*mds.App, error) {
			return c.RetireAppKey(cmd.Context(), app)
		})
	del := &cobra.Command{
		Use:   "delete SLUG",
		Short: "Delete an app and everything it holds (needs an admin token; stop its tasks first)",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.DeleteApp(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "app %s deleted\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, show, update, rotate, retire, del)
	return cmd
}
