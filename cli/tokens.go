package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

func tokenCmd() *cobra.Command {
	cmd, newClient, out := group("token", "Create, list and revoke API tokens")
	var (
		admin   bool
		grants  []string
		expires time.Duration
		page    pageFlags
	)
	create := &cobra.Command{
		Use:   "create NAME (--admin | --grant APP=ROLE …)",
		Short: "Create a token; its secret is printed once",
		Example: `  mds token create ci-shop --grant shop=releaser
  mds token create dashboard --grant shop=viewer --grant blog=viewer --expires 720h`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			in := api.CreateToken{Name: args[0], Admin: admin, ExpiresInSeconds: int64(expires / time.Second)}
			for _, g := range grants {
				app, role, ok := strings.Cut(g, "=")
				if !ok {
					return fmt.Errorf("--grant %q: write APP=ROLE, e.g. shop=releaser", g)
				}
				in.Grants = append(in.Grants, api.GrantRequest{App: app, Role: mds.Role(role)})
			}
			res, err := c.CreateToken(cmd.Context(), in)
			if err != nil {
				return err
			}
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "token\t%s (id %d)\nsecret\t%s\n\nThe secret is shown only now; store it somewhere safe.\n", res.Token.Name, res.Token.ID, res.Secret)
			})
		}),
	}
	create.Flags().BoolVar(&admin, "admin", false, "administer the whole deployment")
	create.Flags().StringArrayVar(&grants, "grant", nil, "APP=ROLE with ROLE viewer, releaser or admin; repeatable")
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h; default: until revoked")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens you administer",
		Args:  cobra.NoArgs,
		RunE: withClient(newClient, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.Tokens(cmd.Context(), page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tROLES\tEXPIRES\tCREATED BY")
				for _, t := range res.Tokens {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", t.ID, t.Name, roles(t), expiry(t), t.CreatedBy)
				}
			})
		}),
	}
	page.register(list)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: withClient(newClient, func(cmd *cobra.Command, args []string, c *client.Client) error {
			id, err := parseID("token", args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteToken(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %d revoked\n", id)
			return nil
		}),
	}
	whoami := &cobra.Command{
		Use:   "whoami",
		Short: "Show the token in use and its roles",
		Args:  cobra.NoArgs,
		RunE: withClient(newClient, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			t, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			return out.print(cmd, t, func(w io.Writer) {
				fmt.Fprintf(w, "token\t%s (id %d)\nroles\t%s\nexpires\t%s\n", t.Name, t.ID, roles(t), expiry(t))
			})
		}),
	}
	cmd.AddCommand(create, list, revoke, whoami)
	return cmd
}

func roles(t *mds.Token) string {
	if t.Admin {
		return "admin of everything"
	}
	s := make([]string, len(t.Grants))
	for i, g := range t.Grants {
		s[i] = g.App + "=" + string(g.Role)
	}
	return strings.Join(s, ",")
}

func expiry(t *mds.Token) string {
	if t.ExpiresAt == nil {
		return "never"
	}
	return when(*t.ExpiresAt)
}
