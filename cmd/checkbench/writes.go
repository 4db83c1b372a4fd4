package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

// measureWrites times management writes through the API of a node holding
// the seeded deployment, each call returning once the node's snapshot shows
// it: edits pausing and resuming one live task of an app picked across the
// deployment, then loading more apps × tasks through the API the way a
// script or the CLI would, one call after another.
func measureWrites(ctx context.Context, node *server, apps, edits, loadApps, tasks int) error {
	c := client.New(node.url, node.token)
	taskOf := map[string]int64{}
	var took []time.Duration
	for i := range edits {
		slug := fmt.Sprintf("app-%d", (i/2*7919)%apps) // each app twice in a row: pause, then resume
		id, ok := taskOf[slug]
		if !ok {
			page, err := c.Tasks(ctx, slug, mds.StatusLive, client.Page{Limit: 1})
			if err != nil {
				return fmt.Errorf("list tasks of %s: %w", slug, err)
			}
			if len(page.Tasks) == 0 {
				return fmt.Errorf("%s has no live task", slug)
			}
			id = page.Tasks[0].ID
			taskOf[slug] = id
		}
		action := mds.ActionPause
		if i%2 == 1 {
			action = mds.ActionResume
		}
		start := time.Now()
		if _, err := c.Act(ctx, slug, id, action); err != nil {
			return fmt.Errorf("%s task %d of %s: %w", action, id, slug, err)
		}
		took = append(took, time.Since(start))
	}
	if len(took) > 0 {
		build, err := node.metric("mds_snapshot_build_seconds")
		if err != nil {
			return err
		}
		slices.Sort(took)
		fmt.Printf("      task edit through the API (%d, pause/resume): p50 %.2f ms, p99 %.2f ms; last snapshot update %.2f ms\n",
			len(took), ms(took[len(took)/2]), ms(took[len(took)*99/100]), build*1e3)
	}
	if loadApps == 0 {
		return nil
	}
	start := time.Now()
	calls := 0
	for i := range loadApps {
		slug := fmt.Sprintf("api-%d", i)
		if _, err := c.CreateApp(ctx, api.CreateApp{Slug: slug, Platforms: mds.Platforms}); err != nil {
			return fmt.Errorf("create app %s: %w", slug, err)
		}
		calls++
		for j := range tasks {
			p, err := c.CreatePackage(ctx, slug, api.CreatePackage{Platform: mds.Platforms[j%3], Version: fmt.Sprintf("%d.%d.0", 2+j/3, j%3),
				Build: int64(200 + j), URL: fmt.Sprintf("https://cdn.example.com/%s/%d.bin", slug, j), Notes: "Loaded through the API."})
			if err != nil {
				return fmt.Errorf("create package of %s: %w", slug, err)
			}
			if _, err := c.CreateTask(ctx, slug, api.CreateTask{PackageID: p.ID, Mode: mds.ModeSingle, Release: true}); err != nil {
				return fmt.Errorf("create task of %s: %w", slug, err)
			}
			calls += 2
		}
	}
	d := time.Since(start)
	fmt.Printf("      loading %d apps × %d tasks through the API: %d calls in %.1f s (%.2f ms a call)\n",
		loadApps, tasks, calls, d.Seconds(), ms(d)/float64(calls))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
