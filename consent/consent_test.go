package consent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"idp/account"
	"idp/consent"
	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

// onSQLite runs fn on a fresh SQLite database. What the queries do on
// every engine is storage's suite (storage/consents_test.go).
func onSQLite(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	fn(t, databasetest.Open(t, databasetest.SQLiteURL(t)))
}

func newStore(t *testing.T, db *database.DB) *consent.Store {
	t.Helper()
	// Consents are recorded only for users that exist.
	ctx := context.Background()
	users := storage.New(db)
	for id := int64(1); id <= 10; id++ {
		name := "u" + strconv.FormatInt(id, 10)
		u, err := users.CreateUser(ctx, storage.NewUser{Username: name, Email: name + "@example.com", PasswordHash: "h", FirstName: "A", LastName: "B"})
		if err != nil || u.ID != id {
			t.Fatalf("user %s: %+v, %v; want id %d", name, u, err, id)
		}
	}
	return consent.NewStore(users, fake.NewClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)).Now)
}

// check is a Covers call and its answer.
type check struct {
	user   int64
	client string
	scopes []string
	want   bool
}

// TestCoversGrant: what was granted is covered, in any order and any
// subset; grants add up; a grant to one client or by one user covers no
// other. An empty request is covered only once the user allowed the
// client something: it still tells the client who the user is.
func TestCoversGrant(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newStore(t, db)
		steps := []struct {
			name   string
			grant  []string // granted to (7, web) before the checks, unless nil
			checks []check
		}{
			{"nothing yet", nil, []check{
				{7, "web", []string{"openid"}, false},
				{7, "web", nil, false},
				{7, "web", []string{}, false},
			}},
			{"an empty request allowed", []string{}, []check{
				{7, "web", nil, true},
				{7, "web", []string{}, true},
				{7, "web", []string{"openid"}, false},
				{7, "other", nil, false},
				{8, "web", nil, false},
			}},
			{"first grant", []string{"openid", "profile"}, []check{
				{7, "web", nil, true},
				{7, "web", []string{"openid"}, true},
				{7, "web", []string{"profile", "openid"}, true},
				{7, "web", []string{"openid", "email"}, false},
				{7, "other", []string{"openid"}, false},
				{8, "web", []string{"openid"}, false},
			}},
			{"second grant adds", []string{"email"}, []check{
				{7, "web", []string{"openid", "profile", "email"}, true},
			}},
			{"repeated grant changes nothing", []string{"openid", "email"}, []check{
				{7, "web", []string{"openid", "profile", "email"}, true},
				{7, "web", []string{"offline_access"}, false},
			}},
		}
		for _, st := range steps {
			if st.grant != nil {
				if err := s.Grant(ctx, 7, "web", st.grant); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			}
			for _, c := range st.checks {
				got, err := s.Covers(ctx, c.user, c.client, c.scopes)
				if err != nil || got != c.want {
					t.Errorf("%s: Covers(%d, %s, %v) = %v, %v; want %v", st.name, c.user, c.client, c.scopes, got, err, c.want)
				}
			}
		}
		row, err := storage.New(db).ConsentOf(ctx, 7, "web")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"openid", "profile", "email"}; !slices.Equal(row.Scopes, want) {
			t.Errorf("stored scopes %v, want %v without repeats", row.Scopes, want)
		}
	})
}

// TestConcurrentGrant: grants racing on one user and client, first to
// create the row and then to extend it, all end up stored. On every
// engine: each reports a lost race its own way, and Grant must read every
// one as a race to retry.
func TestConcurrentGrant(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newStore(t, db)
		const n = 8
		var want []string
		for round := range 2 {
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				scope := fmt.Sprintf("s%d-%d", round, i)
				want = append(want, scope)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = s.Grant(ctx, 7, "web", []string{"openid", scope})
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d grant %d: %v", round, i, err)
				}
			}
			if ok, err := s.Covers(ctx, 7, "web", append([]string{"openid"}, want...)); err != nil || !ok {
				t.Errorf("round %d: not every concurrent grant kept (%v)", round, err)
			}
		}
		if got := db.Ent.Consent.Query().CountX(ctx); got != 1 {
			t.Errorf("%d rows, want 1", got)
		}
	})
}

// TestDeleteUser: a user's consents are forgotten, inside a transaction
// too; another user's stay.
func TestDeleteUser(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newStore(t, db)
		for _, g := range []struct {
			user   int64
			client string
		}{{7, "web"}, {7, "cli"}, {8, "web"}} {
			if err := s.Grant(ctx, g.user, g.client, []string{"openid"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := storage.New(db).InTx(ctx, func(ctx context.Context) error { return s.DeleteUser(ctx, 7) }); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			user   int64
			client string
			want   bool
		}{{7, "web", false}, {7, "cli", false}, {8, "web", true}} {
			if got, err := s.Covers(ctx, c.user, c.client, []string{"openid"}); err != nil || got != c.want {
				t.Errorf("Covers(%d, %s) = %v, %v; want %v", c.user, c.client, got, err, c.want)
			}
		}
		if err := s.DeleteUser(ctx, 7); err != nil {
			t.Errorf("deleting again: %v", err)
		}
	})
}

// TestGrantNeedsUser: no consent is recorded for a user that does not
// exist (erased meanwhile): Grant says account.ErrNotFound.
func TestGrantNeedsUser(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := newStore(t, db)
		if err := s.Grant(ctx, 99, "web", []string{"openid"}); !errors.Is(err, account.ErrNotFound) {
			t.Errorf("Grant for no user: %v, want account.ErrNotFound", err)
		}
		if ok, err := s.Covers(ctx, 99, "web", []string{"openid"}); err != nil || ok {
			t.Errorf("Covers after the refused grant: %v, %v", ok, err)
		}
	})
}
