package main

import (
	"context"
	"fmt"
	"iter"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/sqlite"
)

// seed writes the benchmark's deployment into a fresh SQLite store at
// path, straight through the store (the API would work too, only slower):
// the reference load of apps × tasks official tasks, and the gray app with
// its 50 gray tasks of five rules and a whitelist of whitelist users.
// With configuration ("keys,namespaces,changes"), every app of the
// reference load also holds that many keys in that many namespaces, and
// that many live gray changes of them (deliverytest.Configured).
func seed(ctx context.Context, path string, apps, tasks, whitelist int, configuration string) error {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	ref := deliverytest.Reference(apps, tasks)
	if configuration != "" {
		c, err := ints(configuration)
		if err != nil {
			return err
		}
		ref = deliverytest.Configured(apps, tasks, c[0], c[1], c[2])
	}
	for _, load := range []*deliverytest.Load{ref, deliverytest.Gray(50, whitelist)} {
		if err := copyLoad(ctx, st, load, whitelist); err != nil {
			return err
		}
	}
	return nil
}

// copyLoad writes a synthetic load into st, mapping its IDs to the
// store's.
func copyLoad(ctx context.Context, st mds.Store, load *deliverytest.Load, whitelist int) error {
	set := load.Set
	apps := map[int64]int64{}
	for _, a := range set.Apps {
		c := *a
		if err := st.CreateApp(ctx, &c); err != nil {
			return fmt.Errorf("app %s: %w", a.Slug, err)
		}
		apps[a.ID] = c.ID
	}
	for _, v := range set.Config {
		_, err := st.EditConfig(ctx, apps[v.AppID], "checkbench", "seed", []mds.ConfigEdit{{Namespace: v.Namespace, Set: v.Keys}})
		if err != nil {
			return fmt.Errorf("namespace %s: %w", v.Namespace, err)
		}
	}
	lists := map[int64]int64{}
	for _, w := range set.Whitelists {
		c := *w
		c.AppID = apps[w.AppID]
		if err := st.CreateWhitelist(ctx, &c); err != nil {
			return fmt.Errorf("whitelist %s: %w", w.Name, err)
		}
		entries := iter.Seq2[string, error](func(yield func(string, error) bool) {
			for i := range whitelist {
				if !yield(deliverytest.UserID(i), nil) {
					return
				}
			}
		})
		if _, err := st.ReplaceWhitelist(ctx, c.AppID, c.ID, entries); err != nil {
			return fmt.Errorf("whitelist %s: %w", w.Name, err)
		}
		lists[w.ID] = c.ID
	}
	artifacts := map[int64]int64{}
	for _, p := range set.Artifacts {
		c := *p
		c.AppID = apps[p.AppID]
		for _, b := range p.Blobs {
			if err := st.AddBlob(ctx, c.AppID, mds.Blob{SHA256: b.SHA256, Size: b.Size}, "checkbench"); err != nil {
				return fmt.Errorf("blob of package %d: %w", p.ID, err)
			}
		}
		if err := st.CreateArtifact(ctx, &c); err != nil {
			return fmt.Errorf("package %d: %w", p.ID, err)
		}
		artifacts[p.ID] = c.ID
	}
	for _, t := range set.Tasks {
		c := *t
		c.AppID, c.ArtifactID = apps[t.AppID], artifacts[t.ArtifactID]
		c.Targeting.Whitelists = nil
		for _, id := range t.Targeting.Whitelists {
			c.Targeting.Whitelists = append(c.Targeting.Whitelists, lists[id])
		}
		if err := st.CreateTask(ctx, &c, "checkbench"); err != nil {
			return fmt.Errorf("task %d: %w", t.ID, err)
		}
	}
	return nil
}
