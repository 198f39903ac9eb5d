package session_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"idp/account"
	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/session"
	"idp/storage"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// onSQLite runs fn on a fresh SQLite database with users 1 to 10, since
// sessions are made only for users that exist. What the queries do on
// every engine is storage's suite (storage/sessions_test.go).
func onSQLite(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	ctx := context.Background()
	users := storage.New(db)
	for id := int64(1); id <= 10; id++ {
		name := "u" + strconv.FormatInt(id, 10)
		u, err := users.CreateUser(ctx, storage.NewUser{Username: name, Email: name + "@example.com", PasswordHash: "h", FirstName: "A", LastName: "B"})
		if err != nil || u.ID != id {
			t.Fatalf("user %s: %+v, %v; want id %d", name, u, err, id)
		}
	}
	fn(t, db)
}

func newStore(db *database.DB) (*session.Store, *fake.Clock) {
	clock := fake.NewClock(t0)
	return session.NewStore(storage.New(db), session.Options{TTL: 14 * 24 * time.Hour, IdleTTL: 3 * 24 * time.Hour, Now: clock.Now}), clock
}

// stored is the row of the session token names, as storage reads it.
func stored(t *testing.T, db *database.DB, token string) *storage.BrowserSession {
	t.Helper()
	sum := sha256.Sum256([]byte(token))
	row, err := storage.New(db).SessionByTokenHash(context.Background(), hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// TestCreateLookup: a new session reads back by its token with everything
// it was created with; the token and id have the promised shape, and
// tokens that are not a live session's are ErrNotFound.
func TestCreateLookup(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		token, created, err := s.Create(ctx, 7, []string{"pwd"}, "Firefox/140", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(token) != 43 || strings.ContainsAny(token, "+/=") {
			t.Errorf("token %q: want 43 characters of unpadded base64url", token)
		}
		if len(created.ID) != 22 || created.ID == token {
			t.Errorf("id %q: want 22 characters, not the token", created.ID)
		}
		want := session.Session{ID: created.ID, UserID: 7, AuthTime: t0, Methods: []string{"pwd"}, UserAgent: "Firefox/140",
			Remember: true, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(3 * 24 * time.Hour)}
		got, err := s.Lookup(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		for name, sess := range map[string]*session.Session{"created": created, "looked up": got} {
			if !equal(*sess, want) {
				t.Errorf("%s: %+v, want %+v", name, *sess, want)
			}
		}

		other, _, err := s.Create(ctx, 7, []string{"pwd"}, "", false)
		if err != nil || other == token {
			t.Fatalf("second session: %q, %v", other, err)
		}

		bad := []struct{ name, token string }{
			{"empty", ""},
			{"short", token[:42]},
			{"long", token + "A"},
			{"not base64url", strings.Repeat("!", 43)},
			{"huge", strings.Repeat("A", 1<<16)},
			{"unknown", strings.Repeat("A", 43)},
			{"the id", created.ID},
		}
		for _, tt := range bad {
			if _, err := s.Lookup(ctx, tt.token); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
			}
		}
	})
}

// TestCreateNeedsUser: no session starts for a user that does not exist
// (erased meanwhile): Create says account.ErrNotFound and stores nothing.
func TestCreateNeedsUser(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		if _, _, err := s.Create(ctx, 99, []string{"pwd"}, "", false); !errors.Is(err, account.ErrNotFound) {
			t.Errorf("Create for no user: %v, want account.ErrNotFound", err)
		}
		if n := db.Ent.BrowserSession.Query().CountX(ctx); n != 0 {
			t.Errorf("%d sessions stored", n)
		}
	})
}

func equal(a, b session.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.AuthTime.Equal(b.AuthTime) && slices.Equal(a.Methods, b.Methods) &&
		a.UserAgent == b.UserAgent && a.Remember == b.Remember && a.CreatedAt.Equal(b.CreatedAt) &&
		a.LastSeenAt.Equal(b.LastSeenAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// TestHashedAtRest: no column of the session's row holds the token; the
// row holds its SHA-256.
func TestHashedAtRest(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		token, sess, err := s.Create(ctx, 7, []string{"pwd"}, "ua", false)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.SQL.QueryContext(ctx, "SELECT * FROM browser_sessions")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				if strings.Contains(fmt.Sprint(v), token) {
					t.Errorf("column %s holds the token", cols[i])
				}
			}
		}
		if err := rows.Err(); err != nil || n != 1 {
			t.Fatalf("%d rows, %v", n, err)
		}
		// The row is found by the token's SHA-256.
		if row := stored(t, db, token); row.ID != sess.ID {
			t.Errorf("the token's SHA-256 finds session %q, want %q", row.ID, sess.ID)
		}
	})
}

// TestExpiry: a session ends when it has not been seen for the idle
// lifetime, and at the absolute lifetime however active it is; the
// returned ExpiresAt says which comes first.
func TestExpiry(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name string
		// visits are the times after creation at which the session is
		// looked up, all but the last expected to find it.
		visits    []time.Duration
		lastFound bool
		wantExp   time.Duration // ExpiresAt after creation, when found
	}{
		{"just before idle", []time.Duration{3*day - time.Second}, true, 6*day - time.Second},
		{"idle", []time.Duration{3 * day}, false, 0},
		{"kept alive past the idle lifetime", []time.Duration{2 * day, 4 * day, 6 * day}, true, 9 * day},
		{"absolute end caps the idle one", []time.Duration{2 * day, 4 * day, 6 * day, 8 * day, 10 * day, 12 * day}, true, 14 * day},
		{"absolute end", []time.Duration{2 * day, 4 * day, 6 * day, 8 * day, 10 * day, 12 * day, 14 * day}, false, 0},
	}
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		for _, tt := range tests {
			s, clock := newStore(db)
			token, _, err := s.Create(ctx, 7, nil, "", true)
			if err != nil {
				t.Fatal(err)
			}
			for i, at := range tt.visits {
				clock.Set(t0.Add(at))
				got, err := s.Lookup(ctx, token)
				last := i == len(tt.visits)-1
				if !last || tt.lastFound {
					if err != nil {
						t.Fatalf("%s: visit %v: %v", tt.name, at, err)
					}
					if last && !got.ExpiresAt.Equal(t0.Add(tt.wantExp)) {
						t.Errorf("%s: ExpiresAt %v, want %v", tt.name, got.ExpiresAt, t0.Add(tt.wantExp))
					}
					continue
				}
				if !errors.Is(err, session.ErrNotFound) {
					t.Errorf("%s: visit %v: %v, want ErrNotFound", tt.name, at, err)
				}
			}
		}
	})
}

// TestLastSeenThrottle: a lookup records the visit only when the last
// record is a minute old or more, so page views are not each a write.
func TestLastSeenThrottle(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, clock := newStore(db)
		token, sess, err := s.Create(ctx, 7, nil, "", false)
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			advance time.Duration
			want    time.Time // LastSeenAt, returned and stored
		}{
			{30 * time.Second, t0},
			{29 * time.Second, t0},
			{time.Second, t0.Add(time.Minute)},
			{59 * time.Second, t0.Add(time.Minute)},
			{2 * time.Minute, t0.Add(3*time.Minute + 59*time.Second)},
		}
		for _, st := range steps {
			clock.Advance(st.advance)
			got, err := s.Lookup(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			row := stored(t, db, token)
			if row.ID != sess.ID || !got.LastSeenAt.Equal(st.want) || !row.LastSeenAt.Equal(st.want) {
				t.Errorf("at %v: LastSeenAt returned %v, stored %v, want %v", clock.Now().Sub(t0), got.LastSeenAt, row.LastSeenAt, st.want)
			}
			if want := st.want.Add(3 * 24 * time.Hour); !got.ExpiresAt.Equal(want) {
				t.Errorf("at %v: ExpiresAt %v, want %v", clock.Now().Sub(t0), got.ExpiresAt, want)
			}
		}
	})
}

// TestDelete: sign-out ends one session, idempotently; DeleteUser ends
// every session of one user and no one else's, inside a transaction too;
// DeleteExpired removes sessions past either end.
func TestDelete(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, clock := newStore(db)
		create := func(user int64) string {
			token, _, err := s.Create(ctx, user, []string{"pwd"}, "", false)
			if err != nil {
				t.Fatal(err)
			}
			return token
		}
		live := func(token string) bool {
			_, err := s.Lookup(ctx, token)
			if err != nil && !errors.Is(err, session.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}

		a1, a2, b := create(1), create(1), create(2)
		sa1, _ := s.Lookup(ctx, a1)
		for range 2 {
			if err := s.Delete(ctx, sa1.ID); err != nil {
				t.Fatal(err)
			}
		}
		if live(a1) || !live(a2) || !live(b) {
			t.Errorf("after Delete: a1 %v a2 %v b %v, want only a2 and b live", live(a1), live(a2), live(b))
		}

		a3 := create(1)
		if err := storage.New(db).InTx(ctx, func(ctx context.Context) error { return s.DeleteUser(ctx, 1) }); err != nil {
			t.Fatal(err)
		}
		if live(a2) || live(a3) || !live(b) {
			t.Errorf("after DeleteUser: a2 %v a3 %v b %v, want only b live", live(a2), live(a3), live(b))
		}

		// b is seen now; c goes idle; d stays active until its absolute end.
		clock.Advance(2 * 24 * time.Hour)
		create(3) // c
		d := create(4)
		clock.Advance(2 * 24 * time.Hour)
		live(d)
		clock.Advance(2 * 24 * time.Hour)
		live(d)
		n, err := s.DeleteExpired(ctx)
		if err != nil || n != 2 {
			t.Errorf("DeleteExpired = %d, %v; want b and c", n, err)
		}
		if got := db.Ent.BrowserSession.Query().CountX(ctx); got != 1 || !live(d) {
			t.Errorf("%d rows left, d live %v; want d alone", got, live(d))
		}

		// A store whose idle lifetime outlasts the absolute one: only the
		// absolute end removes e.
		short := session.NewStore(storage.New(db), session.Options{TTL: time.Hour, IdleTTL: 24 * time.Hour, Now: clock.Now})
		if _, _, err := short.Create(ctx, 5, nil, "", false); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
		if n, err := short.DeleteExpired(ctx); err != nil || n != 1 {
			t.Errorf("DeleteExpired at the absolute end = %d, %v; want 1", n, err)
		}
		if !live(d) {
			t.Error("d removed with e")
		}
	})
}

// TestUserAgent: any user agent is stored, cut to 255 bytes of valid
// UTF-8 without control characters, on every engine.
func TestUserAgent(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Mozilla/5.0", "Mozilla/5.0"},
		{"long", strings.Repeat("a", 300), strings.Repeat("a", 255)},
		{"cut between characters", strings.Repeat("é", 200), strings.Repeat("é", 127)},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"NUL and controls", "a\x00b\r\nc", "abc"},
	}
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		for _, tt := range tests {
			token, _, err := s.Create(ctx, 7, nil, tt.in, false)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got, err := s.Lookup(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			if got.UserAgent != tt.want || len(got.UserAgent) > 255 || !utf8.ValidString(got.UserAgent) {
				t.Errorf("%s: %q, want %q", tt.name, got.UserAgent, tt.want)
			}
		}
	})
}
