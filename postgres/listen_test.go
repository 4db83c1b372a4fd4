package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestListenBackoffResets: the wait before reconnecting doubles while
// connecting fails, and starts again from the shortest once a connection
// has listened, however long the wait had grown.
func TestListenBackoffResets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Four failures to connect, then a session that listens and drops,
	// then one more failure.
	sessions := []bool{false, false, false, false, true, false}
	n := 0
	session := func(_ context.Context, listening func()) error {
		if sessions[n] {
			listening()
		}
		n++
		if n == len(sessions) {
			cancel()
		}
		return errors.New("connection lost")
	}
	var waits []time.Duration
	wait := func(_ context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return true
	}
	listenLoop(ctx, session, nil, wait)
	want := fmt.Sprint([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 100 * time.Millisecond})
	if got := fmt.Sprint(waits); got != want {
		t.Errorf("waits %s, want %s", got, want)
	}
}
