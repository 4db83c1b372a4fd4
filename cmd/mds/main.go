// Command mds is the Mobile Delivery Service: `mds serve` runs the server,
// every other command is a client of its management API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.buildVersion=…".
var buildVersion = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mds:", err)
		os.Exit(1)
	}
}

// run executes one command line; tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "mds",
		Short:         "Mobile Delivery Service: ship upgrades to apps already installed on phones",
		Version:       buildVersion,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(), appCmd(), packageCmd(), taskCmd(), whitelistCmd(), ruleSetCmd(), explainCmd(), previewCmd(), tokenCmd())
	return root.ExecuteContext(ctx)
}

// env returns the environment variable key, or def when it is unset.
func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
