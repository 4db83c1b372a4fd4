package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

func printTask(t *api.Task) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "task\t%d\nstatus\t%s (%s)\npackage\t%d (%s)\n", t.ID, t.Status, t.Stage, t.PackageID,
			strings.Join(strings.Fields(string(t.Kind)+" "+string(t.Platform)+" "+t.Version), " "))
		if u := t.UpgradeTask; u != nil {
			fmt.Fprintf(w, "mode\t%s\n", u.Mode)
			if u.RemindIntervalSeconds > 0 {
				fmt.Fprintf(w, "remind every\t%s\n", time.Duration(u.RemindIntervalSeconds)*time.Second)
			}
		}
		describeTargeting(w, &t.Targeting)
	}
}

func taskCmd() *cobra.Command {
	cmd, newClient, out := group("task", "Release packages to devices and drive the releases")
	var (
		pkgID    int64
		target   targetingFlags
		mode     string
		interval time.Duration
		release  bool
		status   string
		page     pageFlags
	)
	create := &cobra.Command{
		Use:   "create --app APP --package ID --mode single|multiple|force",
		Short: "Create a release task: official, or gray with whitelists, a percentage or a capped window",
		Example: `  mds task create --app shop --package 3 --mode single --remind-interval 24h --release
  mds task create --app shop --package 4 --mode force --whitelist 2 --percent 5 \
      --rule "os_version VERSION_GTE 12" --release`,
		Args: cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			var tg mds.Targeting
			if err := target.apply(cmd, &tg); err != nil {
				return err
			}
			t, err := c.CreateTask(cmd.Context(), app, api.CreateTask{PackageID: pkgID, Mode: mds.UpgradeMode(mode), Release: release,
				RemindIntervalSeconds: int64(interval / time.Second), Targeting: tg})
			if err != nil {
				return err
			}
			return out.print(cmd, t, printTask(t))
		}),
	}
	appFlag(create)
	create.Flags().Int64Var(&pkgID, "package", 0, "ID of the package to deliver")
	create.Flags().StringVar(&mode, "mode", "", "single (remind once per interval), multiple (every check) or force")
	create.Flags().DurationVar(&interval, "remind-interval", 0, "single mode: how often to remind, e.g. 24h (default 72h)")
	create.Flags().BoolVar(&release, "release", false, "make it live at once (gray if it has a gray gate, else official)")
	target.register(create, false)

	list := &cobra.Command{
		Use:   "list --app APP",
		Short: "List an app's tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: onApp(newClient, func(cmd *cobra.Command, _ []string, app string, c *client.Client) error {
			res, err := c.Tasks(cmd.Context(), app, mds.Status(status), page.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSTATUS\tSTAGE\tMODE\tPACKAGE\tPLATFORM\tVERSION\tUPDATED")
				for _, t := range res.Tasks {
					mode := ""
					if t.UpgradeTask != nil {
						mode = string(t.Mode)
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Status, t.Stage, mode, t.PackageID, t.Platform, t.Version, when(t.UpdatedAt))
				}
			})
		}),
	}
	appFlag(list)
	page.register(list)
	list.Flags().StringVar(&status, "status", "", "only draft, live, paused or stopped tasks")

	show := showCmd(newClient, out, "task", "Show a task and what is in force of its targeting",
		func(ctx context.Context, c *client.Client, app string, id int64) (*api.Task, error) {
			return c.Task(ctx, app, id)
		}, printTask)

	var historyPage pageFlags
	history := &cobra.Command{
		Use:   "history --app APP TASK",
		Short: "Show what happened to a task, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: onID(newClient, "task", func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
			res, err := c.History(cmd.Context(), app, id, historyPage.page())
			if err != nil {
				return err
			}
			defer more(cmd, out, res.Next)
			return out.print(cmd, res, func(w io.Writer) {
				fmt.Fprintln(w, "WHEN\tACTION\tSTATUS\tBY")
				for _, e := range res.Events {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", when(e.At), e.Action, e.Status, e.Actor)
				}
			})
		}),
	}
	appFlag(history)
	historyPage.register(history)
	del := deleteCmd(newClient, "task", func(ctx context.Context, c *client.Client, app string, id int64) error {
		return c.DeleteTask(ctx, app, id)
	})
	del.Short = "Delete a draft or stopped task with its history"
	cmd.AddCommand(create, list, show, history, targetCmd(newClient, out), del)

	for _, a := range mds.Actions {
		act := &cobra.Command{
			Use:   string(a) + " --app APP TASK",
			Short: strings.ToUpper(string(a[:1])) + string(a[1:]) + " a task",
			Args:  cobra.ExactArgs(1),
			RunE: onID(newClient, "task", func(cmd *cobra.Command, app string, c *client.Client, id int64) error {
				t, err := c.Act(cmd.Context(), app, id, a)
				if err != nil {
					return err
				}
				return out.print(cmd, t, printTask(t))
			}),
		}
		appFlag(act)
		cmd.AddCommand(act)
	}
	return cmd
}
