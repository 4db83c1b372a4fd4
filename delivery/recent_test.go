package delivery_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
)

// TestRecentTinyShare: a share too small for one record keeps nothing,
// and recording into it again does not fail.
func TestRecentTinyShare(t *testing.T) {
	r := delivery.NewRecent(10, 2000, 1)
	d := device("a", mds.Android, "1.0")
	d.DeviceID = "x"
	for i := 0; i < 3; i++ {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Record #%d panics: %v", i, p)
				}
			}()
			r.Record(1, ptr(gray.NewInput(d, netip.Addr{}, now)))
		}()
	}
}

// TestRecentTrimEmpties: a ring emptied by trimming (a record replaced by
// one too big for the share) goes on recording.
func TestRecentTrimEmpties(t *testing.T) {
	r := delivery.NewRecent(400, 2000, 1)
	d := device("a", mds.Android, "1.0")
	d.DeviceID = "x"
	r.Record(1, ptr(gray.NewInput(d, netip.Addr{}, now)))
	d.DeviceID = strings.Repeat("y", 256)
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panics: %v", p)
		}
	}()
	for i := 0; i < 5; i++ {
		r.Record(1, ptr(gray.NewInput(d, netip.Addr{}, now)))
		t.Logf("after %d: %d items, %d bytes", i, len(r.Sample(1)), r.Bytes())
	}
}

// TestRecentAttrMismatchBudget: past 16 attributes, sizing a record and
// writing it may pick different ones (map order); the budget holds anyway.
func TestRecentAttrMismatchBudget(t *testing.T) {
	over := 0
	for trial := 0; trial < 2000; trial++ {
		d := device("a", mds.Android, "1.0")
		d.DeviceID = "x"
		d.Attributes = map[string]string{strings.Repeat("k", 256): strings.Repeat("v", 256)}
		for i := 0; i < 16; i++ {
			d.Attributes[fmt.Sprint(i)] = ""
		}
		// budget just enough for a record sized without the big attribute
		small := device("a", mds.Android, "1.0")
		small.DeviceID = "x"
		small.Attributes = map[string]string{}
		for i := 0; i < 16; i++ {
			small.Attributes[fmt.Sprint(i)] = ""
		}
		probe := delivery.NewRecent(1<<20, 1, 1)
		probe.Record(1, ptr(gray.NewInput(small, netip.Addr{}, now)))
		budget := probe.Bytes()
		r := delivery.NewRecent(budget, 2000, 1)
		r.Record(1, ptr(gray.NewInput(d, netip.Addr{}, now)))
		if r.Bytes() > budget {
			over++
			if over == 1 {
				t.Errorf("trial %d: Bytes() = %d > budget %d", trial, r.Bytes(), budget)
			}
		}
	}
	t.Logf("over budget in %d of 2000 trials", over)
}

// TestRecentShareRace: apps arriving while others record, shrinking every
// share, never take the sample over its budget.
func TestRecentShareRace(t *testing.T) {
	const budget = 20000
	worst := 0
	for trial := 0; trial < 200; trial++ {
		r := delivery.NewRecent(budget, 100000, 1)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				d := device("a", mds.Android, "1.0")
				for i := 0; i < 300; i++ {
					d.DeviceID = fmt.Sprint("d", g, i)
					app := int64(0)
					if g > 0 && i%50 == 0 {
						app = int64(g*1000 + i)
					}
					r.Record(app, ptr(gray.NewInput(d, netip.Addr{}, now)))
				}
			}(g)
		}
		wg.Wait()
		if b := r.Bytes(); b > worst {
			worst = b
		}
	}
	if worst > budget {
		t.Errorf("Bytes() reached %d > budget %d", worst, budget)
	}
}
