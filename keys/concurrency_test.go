package keys

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idp/database"
	"idp/storage"
)

// race runs n calls of fn at once, alternating between the two managers, and
// returns how many reported true. Every call must succeed.
func race(t *testing.T, n int, ms [2]*Manager, fn func(m *Manager) (bool, error)) int {
	t.Helper()
	var (
		start   = make(chan struct{})
		wg      sync.WaitGroup
		changes atomic.Int32
		errs    = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := fn(ms[i%2])
			if err != nil {
				errs <- err
			}
			if ok {
				changes.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	return int(changes.Load())
}

// TestConcurrentSteps has two processes' managers step at once through three
// rotation cycles. Each hour either one change is due or none; exactly one of
// the concurrent steps must report it.
func TestConcurrentSteps(t *testing.T) {
	eachPair(t, func(t *testing.T, a, b *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m1 := loadedManager(t, storage.New(a), testOptions(clock))
		m2 := loadedManager(t, storage.New(b), testOptions(clock))
		ms := [2]*Manager{m1, m2}

		// Schedule: next key at +8h, promotion at +10h, the retired key
		// removed at +12h (due at +11h02m), then every 10h.
		for h := 1; h <= 32; h++ {
			clock.Set(t0.Add(time.Duration(h) * time.Hour))
			want := 0
			switch {
			case h%10 == 8, h%10 == 0, h%10 == 2 && h > 2:
				want = 1
			}
			got := race(t, 6, ms, func(m *Manager) (bool, error) { return m.Step(ctx) })
			if got != want {
				t.Fatalf("+%dh: %d concurrent steps reported a change, want %d", h, got, want)
			}
			checkTable(t, storage.New(a))
			if k1, k2 := activeKID(t, m1), activeKID(t, m2); k1 != k2 {
				t.Fatalf("+%dh: managers sign with %s and %s", h, k1, k2)
			}
		}
		// At +32h the third key has just been removed and the fourth's
		// successor is not due until +38h.
		if rows := checkTable(t, storage.New(a)); len(rows) != 1 {
			t.Errorf("at +32h the table has %d keys, want only the active one", len(rows))
		}
	})
}

// TestConcurrentRotate: concurrent `keys rotate` calls agree on one next key,
// and exactly one of them performs each promotion.
func TestConcurrentRotate(t *testing.T) {
	eachPair(t, func(t *testing.T, a, b *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m1 := loadedManager(t, storage.New(a), testOptions(clock))
		m2 := loadedManager(t, storage.New(b), testOptions(clock))
		ms := [2]*Manager{m1, m2}

		for round := range 3 {
			// Start from a table with an active key and no next one: a
			// next key left by the previous round is due by now.
			clock.Advance(3 * time.Hour)
			if _, err := m1.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if _, next := pick(checkTable(t, storage.New(a))); next != nil {
				t.Fatalf("round %d: a next key is left: %v", round, next)
			}

			var (
				mu      sync.Mutex
				results []KeyInfo
			)
			rotate := func(immediate bool) func(m *Manager) (bool, error) {
				return func(m *Manager) (bool, error) {
					ki, promoted, err := m.rotate(ctx, immediate)
					mu.Lock()
					results = append(results, ki)
					mu.Unlock()
					return promoted, err
				}
			}

			// Scheduled rotation: every caller gets the same next key, and
			// none promotes it before PublishLead has passed.
			if got := race(t, 4, ms, rotate(false)); got != 0 {
				t.Fatalf("round %d: %d promotions before PublishLead", round, got)
			}
			agreed := results[0].ID
			for _, ki := range results {
				if ki.ID != agreed || ki.State != StateNext {
					t.Fatalf("round %d: concurrent rotations returned %+v and %s", round, ki, agreed)
				}
			}
			checkTable(t, storage.New(a))

			// Once it is due, exactly one caller promotes it. Callers that
			// come after the promotion start a new rotation: they get a new
			// next key, which is fine for `keys rotate`.
			clock.Advance(2 * time.Hour)
			results = nil
			if got := race(t, 4, ms, rotate(false)); got != 1 {
				t.Fatalf("round %d: %d concurrent rotations performed the due promotion, want 1", round, got)
			}
			for _, ki := range results {
				if (ki.State == StateActive) != (ki.ID == agreed) {
					t.Fatalf("round %d: rotation returned %+v; the promoted key is %s", round, ki, agreed)
				}
			}
			checkTable(t, storage.New(a))

			// Emergency rotations: several keys may be created and promoted
			// in turn, but each promotion is performed exactly once.
			clock.Advance(time.Hour)
			now := clock.Now()
			promotions := race(t, 4, ms, rotate(true))
			rows := checkTable(t, storage.New(a))
			activated := 0
			for _, r := range rows {
				if r.ActivatedAt != nil && r.ActivatedAt.Equal(now) {
					activated++
				}
			}
			if promotions < 1 || promotions != activated {
				t.Fatalf("round %d: %d calls report a promotion, %d keys were activated", round, promotions, activated)
			}
			for _, m := range ms {
				if err := m.Load(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if k1, k2 := activeKID(t, m1), activeKID(t, m2); k1 != k2 {
				t.Fatalf("round %d: managers sign with %s and %s", round, k1, k2)
			}
		}
	})
}

// TestConcurrentMixed lets both managers step and rotate in random order
// while the clock jumps, checking the table after every round.
func TestConcurrentMixed(t *testing.T) {
	eachPair(t, func(t *testing.T, a, b *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m1 := loadedManager(t, storage.New(a), testOptions(clock))
		m2 := loadedManager(t, storage.New(b), testOptions(clock))
		ms := [2]*Manager{m1, m2}
		rng := rand.New(rand.NewPCG(1, 2))
		for round := range 12 {
			clock.Advance(time.Duration(rng.IntN(5*60)) * time.Minute)
			ops := make([]int, 4)
			for i := range ops {
				ops[i] = rng.IntN(10)
			}
			var next atomic.Int32
			race(t, len(ops), ms, func(m *Manager) (bool, error) {
				switch op := ops[next.Add(1)-1]; {
				case op == 0:
					_, err := m.Rotate(ctx, true)
					return false, err
				case op <= 2:
					_, err := m.Rotate(ctx, false)
					return false, err
				default:
					return m.Step(ctx)
				}
			})
			checkTable(t, storage.New(a))
			for _, m := range ms {
				if err := m.Load(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if k1, k2 := activeKID(t, m1), activeKID(t, m2); k1 != k2 {
				t.Fatalf("round %d: managers sign with %s and %s", round, k1, k2)
			}
			b1, e1 := m1.JWKS()
			b2, e2 := m2.JWKS()
			if e1 != e2 || string(b1) != string(b2) {
				t.Fatalf("round %d: managers publish different key sets", round)
			}
		}
	})
}
