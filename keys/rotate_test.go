package keys

import (
	"context"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
)

// TestRun: Run steps at once (here bootstrapping the first key), steps again
// after RefreshInterval, and returns nil when its context ends. The clock
// ends the context when the second step starts, so the test needs no sleeps.
func TestRun(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opts := testOptions(newClock())
		opts.RefreshInterval = time.Millisecond
		now := opts.Now
		var m *Manager
		opts.Now = func() time.Time {
			if m.snap.Load().active != nil {
				cancel()
			}
			return now()
		}
		m = newManager(t, db.Ent, opts)
		if err := m.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil when the context ends", err)
		}
		checkTable(t, db.Ent)
		if m.snap.Load().active == nil {
			t.Error("Run did not load the keys")
		}

		// An already-ended context returns at once.
		if err := newManager(t, db.Ent, testOptions(newClock())).Run(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
