package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"idp/database"
	"idp/ent"
	"idp/ent/webauthnchallenge"
)

// TestDeleteInBatches: each batch deletes the ids its select read, at
// most a batch of them; the sweep stops at a short batch, and a select
// that finds nothing deletes nothing.
func TestDeleteInBatches(t *testing.T) {
	ctx := context.Background()
	rows := make([]int, 2*database.SweepBatch+17)
	for i := range rows {
		rows[i] = i
	}
	var deletes int
	n, err := deleteInBatches(ctx,
		func(_ context.Context, limit int) ([]int, error) {
			if limit != database.SweepBatch {
				t.Errorf("select limit %d, want %d", limit, database.SweepBatch)
			}
			return rows[:min(limit, len(rows))], nil
		},
		func(_ context.Context, ids []int) (int, error) {
			deletes++
			if !slices.Equal(ids, rows[:len(ids)]) {
				t.Errorf("batch %d deletes ids other than those selected", deletes)
			}
			rows = rows[len(ids):]
			return len(ids), nil
		})
	if err != nil || n != 2*database.SweepBatch+17 || len(rows) != 0 || deletes != 3 {
		t.Errorf("deleteInBatches = %d, %v in %d deletes, %d rows left; want all %d in 3", n, err, deletes, len(rows), 2*database.SweepBatch+17)
	}

	deletes = 0
	n, err = deleteInBatches(ctx,
		func(context.Context, int) ([]string, error) { return nil, nil },
		func(context.Context, []string) (int, error) { deletes++; return 0, nil })
	if err != nil || n != 0 || deletes != 0 {
		t.Errorf("deleteInBatches with nothing to delete = %d, %v after %d deletes; want 0, nil, none", n, err, deletes)
	}
}

// sweepStatements returns a store on s's database whose ent statements
// are recorded, and a count of the DELETE statements on table among them.
func sweepStatements(s *Store) (*Store, func(table string) int) {
	return sweepStatementsHook(s, nil)
}

// sweepFirstBatchOnly returns a store on s's database whose sweeps of
// table stop after their first batch: ctx's cancel is called as the second
// SELECT from table is sent, so that statement fails with context.Canceled.
func sweepFirstBatchOnly(s *Store, table string, cancel context.CancelFunc) *Store {
	selects := 0
	counted, _ := sweepStatementsHook(s, func(q string) {
		if strings.Contains(q, "SELECT") && strings.Contains(q, "FROM "+table) {
			if selects++; selects == 2 {
				cancel()
			}
		}
	})
	return counted
}

// sweepStatementsHook is sweepStatements, calling hook (when not nil) with
// each statement, its quotes taken out, before it runs.
func sweepStatementsHook(s *Store, hook func(stmt string)) (*Store, func(table string) int) {
	var mu sync.Mutex
	var stmts []string
	drv := dialect.DebugWithContext(entsql.OpenDB(s.dialect, s.sql), func(_ context.Context, v ...any) {
		q := fmt.Sprint(v...)
		if hook != nil {
			hook(strings.NewReplacer("`", "", `"`, "").Replace(q))
		}
		mu.Lock()
		defer mu.Unlock()
		stmts = append(stmts, q)
	})
	counted := &Store{db: ent.NewClient(ent.Driver(drv)), sql: s.sql, dialect: s.dialect}
	return counted, func(table string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, q := range stmts {
			q = strings.NewReplacer("`", "", `"`, "").Replace(q)
			if strings.Contains(q, "DELETE FROM "+table+" ") {
				n++
			}
		}
		return n
	}
}

// TestDeleteExpiredWebAuthnChallengesInBatches: the sweep of unfinished
// ceremonies deletes more than a batch of expired challenges in more than
// one bounded statement, and keeps the live ones. On every engine.
func TestDeleteExpiredWebAuthnChallengesInBatches(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := sessionsT0.Add(time.Hour)
		const expired = database.SweepBatch + 17
		for first := 0; first < expired; first += 500 {
			var rows []*ent.WebAuthnChallengeCreate
			for i := first; i < min(first+500, expired); i++ {
				rows = append(rows, s.db.WebAuthnChallenge.Create().SetID(fmt.Sprint("old-", i)).SetCeremony("login").
					SetSessionData([]byte("{}")).SetCreatedAt(sessionsT0).SetExpiresAt(now.Add(-time.Duration(i%2)*time.Minute)))
			}
			s.db.WebAuthnChallenge.CreateBulk(rows...).ExecX(ctx)
		}
		for _, id := range []string{"live-1", "live-2"} {
			if err := s.CreateWebAuthnChallenge(ctx, WebAuthnChallenge{ID: id, Ceremony: WebAuthnLogin, SessionData: []byte("{}"),
				CreatedAt: sessionsT0, ExpiresAt: now.Add(time.Microsecond)}); err != nil {
				t.Fatal(err)
			}
		}
		counted, deletes := sweepStatements(s)
		n, err := counted.DeleteExpiredWebAuthnChallenges(ctx, now)
		if err != nil || n != expired {
			t.Fatalf("DeleteExpiredWebAuthnChallenges = %d, %v; want the %d expired", n, err, expired)
		}
		if d := deletes(webauthnchallenge.Table); d != 2 {
			t.Errorf("the sweep ran %d DELETE statements, want 2 batches", d)
		}
		if ids := s.db.WebAuthnChallenge.Query().IDsX(ctx); !slices.Equal(slices.Sorted(slices.Values(ids)), []string{"live-1", "live-2"}) {
			t.Errorf("left %v, want the two live challenges", ids)
		}
	})
}
