package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds/signing"
)

// keysCmd manages an app team's signing keys. Generating one happens on
// the team's machine alone: the private key is written to a file here and
// never sent anywhere.
func keysCmd() *cobra.Command {
	cmd, newClient, printer := group("keys", "Generate and register the signing keys of app teams; print the deployment's")
	var out, alg string
	generate := &cobra.Command{
		Use:   "generate --out NAME [--alg ecdsa-p256|ed25519]",
		Short: "Write a new key pair to NAME.pem (private, kept by the team) and NAME.pub.pem",
		Example: `  mds keys generate --out team
  mds keys generate --out team-2027 --alg ed25519`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("name the files with --out, e.g. --out team for team.pem and team.pub.pem")
			}
			k, err := signing.Generate(signing.Alg(alg))
			if err != nil {
				return err
			}
			priv, err := k.MarshalPEM()
			if err != nil {
				return err
			}
			privPath, pubPath := out+".pem", out+".pub.pem"
			for _, p := range []string{privPath, pubPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists: a key is never overwritten; choose another --out", p)
				}
			}
			if err := writeNew(privPath, priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(pubPath, k.Public().MarshalPEM(), 0o644); err != nil {
				os.Remove(privPath)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "algorithm\t%s\nkey id\t%s\nprivate key\t%s (keep it with the team; mds never needs it)\npublic key\t%s\n",
				k.Public().Alg(), k.Public().ID(), privPath, pubPath)
			return nil
		},
	}
	generate.Flags().StringVar(&out, "out", "", "file name prefix: NAME.pem and NAME.pub.pem")
	names := make([]string, len(signing.Algs))
	for i, a := range signing.Algs {
		names[i] = string(a)
	}
	generate.Flags().StringVar(&alg, "alg", string(signing.ECDSAP256), "algorithm: "+strings.Join(names, " or "))
	cmd.AddCommand(generate)
	cmd.AddCommand(keysServerCmds(newClient, printer)...)
	return cmd
}

// writeNew writes a file that must not exist yet, whole or not at all.
func writeNew(path string, b []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
