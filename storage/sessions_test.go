package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/ent"
	"idp/ent/browsersession"
)

var sessionsT0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// sessionsUsers creates the users ids, named u<id>: rows that belong to a
// user are written only while it exists.
func sessionsUsers(t *testing.T, s *Store, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		newTestUserWithID(t, s, id, "u"+strconv.FormatInt(id, 10))
	}
}

// sessionRow is a session of userID named id, created at, with its token
// hash derived from the id.
func sessionRow(id string, userID int64, at time.Time) BrowserSession {
	return BrowserSession{ID: id, TokenHash: "hash-" + id, UserID: userID, AuthTime: at, Methods: []string{"pwd", "hwk"},
		UserAgent: "Firefox/140", Remember: true, CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(14 * 24 * time.Hour)}
}

func equalSession(a, b BrowserSession) bool {
	return a.ID == b.ID && a.TokenHash == b.TokenHash && a.UserID == b.UserID && a.AuthTime.Equal(b.AuthTime) &&
		slices.Equal(a.Methods, b.Methods) && a.UserAgent == b.UserAgent && a.Remember == b.Remember &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastSeenAt.Equal(b.LastSeenAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// TestSessionCreateAndFind: a session reads back by its token hash with
// every field it was stored with (user agents at the column's limit of
// 255 bytes and multi-byte text included); another hash finds nothing.
func TestSessionCreateAndFind(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		for i, ua := range []string{"", "Firefox/140", strings.Repeat("a", 255), strings.Repeat("é", 127), "日本語 🦊 \uFFFD"} {
			want := sessionRow("s"+strconv.Itoa(i), 7, sessionsT0)
			want.UserAgent = ua
			if i == 0 {
				want.Methods, want.Remember = nil, false
			}
			if err := s.CreateSession(ctx, want); err != nil {
				t.Fatalf("%q: %v", ua, err)
			}
			got, err := s.SessionByTokenHash(ctx, want.TokenHash)
			if err != nil {
				t.Fatal(err)
			}
			if !equalSession(*got, want) {
				t.Errorf("read back %+v, want %+v", *got, want)
			}
		}
		if _, err := s.SessionByTokenHash(ctx, "hash-none"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown hash: %v, want ErrNotFound", err)
		}
	})
}

// TestSessionCreateNeedsUser: no session is stored for a user that does
// not exist (or no longer does), inside a transaction or not.
func TestSessionCreateNeedsUser(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.CreateSession(ctx, sessionRow("s1", 9, sessionsT0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing user: %v, want ErrNotFound", err)
		}
		err := s.InTx(ctx, func(ctx context.Context) error { return s.CreateSession(ctx, sessionRow("s2", 9, sessionsT0)) })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("missing user, in a transaction: %v, want ErrNotFound", err)
		}
		if n := s.db.BrowserSession.Query().CountX(ctx); n != 0 {
			t.Errorf("%d sessions stored", n)
		}
	})
}

// TestSessionDuplicateToken: two sessions cannot share a token hash.
func TestSessionDuplicateToken(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		a := sessionRow("a", 7, sessionsT0)
		if err := s.CreateSession(ctx, a); err != nil {
			t.Fatal(err)
		}
		b := sessionRow("b", 7, sessionsT0)
		b.TokenHash = a.TokenHash
		if err := s.CreateSession(ctx, b); !errors.Is(err, ErrConflict) {
			t.Errorf("same token hash: %v, want ErrConflict", err)
		}
	})
}

// TestSessionRecordSeen: the sighting is written only while the stored
// one is at or before staleBy.
func TestSessionRecordSeen(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		row := sessionRow("s", 7, sessionsT0)
		if err := s.CreateSession(ctx, row); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			at, staleBy, want time.Time
		}{
			{sessionsT0.Add(30 * time.Second), sessionsT0.Add(-30 * time.Second), sessionsT0},
			{sessionsT0.Add(time.Minute), sessionsT0, sessionsT0.Add(time.Minute)},
			{sessionsT0.Add(90 * time.Second), sessionsT0.Add(30 * time.Second), sessionsT0.Add(time.Minute)},
		}
		for _, st := range steps {
			if err := s.RecordSessionSeen(ctx, "s", st.at, st.staleBy); err != nil {
				t.Fatal(err)
			}
			got, err := s.SessionByTokenHash(ctx, row.TokenHash)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastSeenAt.Equal(st.want) {
				t.Errorf("seen at %v if stale by %v: LastSeenAt %v, want %v", st.at, st.staleBy, got.LastSeenAt, st.want)
			}
		}
		if err := s.RecordSessionSeen(ctx, "gone", sessionsT0, sessionsT0); err != nil {
			t.Errorf("a session that is gone: %v", err)
		}
	})
}

// TestSessionDeletes: one session by id (idempotently), one by id only if
// it is the user's, all of a user's, and all of a user's but one.
func TestSessionDeletes(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 1, 2)
		create := func(id string, user int64) {
			t.Helper()
			if err := s.CreateSession(ctx, sessionRow(id, user, sessionsT0)); err != nil {
				t.Fatal(err)
			}
		}
		left := func() []string {
			t.Helper()
			ids := s.db.BrowserSession.Query().IDsX(ctx)
			slices.Sort(ids)
			return ids
		}
		for _, id := range []string{"a1", "a2", "a3", "a4"} {
			create(id, 1)
		}
		create("b1", 2)
		create("b2", 2)

		for range 2 {
			if err := s.DeleteSession(ctx, "a1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUserSession(ctx, 1, "b1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("another user's session: %v, want ErrNotFound", err)
		}
		if err := s.DeleteUserSession(ctx, 1, "a2"); err != nil {
			t.Errorf("own session: %v", err)
		}
		if err := s.DeleteUserSession(ctx, 1, "a2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("own session again: %v, want ErrNotFound", err)
		}
		if got, want := left(), []string{"a3", "a4", "b1", "b2"}; !slices.Equal(got, want) {
			t.Fatalf("left %v, want %v", got, want)
		}
		// Another user's id keeps nothing of user 1's.
		if err := s.InTx(ctx, func(ctx context.Context) error { return s.DeleteUserSessions(ctx, 1, "b1") }); err != nil {
			t.Fatal(err)
		}
		if got, want := left(), []string{"b1", "b2"}; !slices.Equal(got, want) {
			t.Fatalf("after deleting user 1's but b1: %v, want %v", got, want)
		}
		if err := s.DeleteUserSessions(ctx, 2, "b2"); err != nil {
			t.Fatal(err)
		}
		if got, want := left(), []string{"b2"}; !slices.Equal(got, want) {
			t.Fatalf("after deleting user 2's but b2: %v, want %v", got, want)
		}
		if err := s.DeleteUserSessions(ctx, 2, ""); err != nil {
			t.Fatal(err)
		}
		if got := left(); len(got) != 0 {
			t.Fatalf("after deleting all of user 2's: %v", got)
		}
	})
}

// TestUserSessions: a user's sessions with their absolute end after now
// and seen after idleSince, newest first (ties by id); no one else's.
func TestUserSessions(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7, 8)
		now := sessionsT0.Add(10 * 24 * time.Hour)
		idleSince := now.Add(-3 * 24 * time.Hour)
		rows := []struct {
			id                 string
			user               int64
			created, seen, end time.Time
		}{
			{"old", 7, sessionsT0, now.Add(-time.Hour), now.Add(time.Hour)},
			{"mid-b", 7, sessionsT0.Add(time.Hour), now, now.Add(time.Hour)},
			{"mid-a", 7, sessionsT0.Add(time.Hour), now, now.Add(time.Hour)},
			{"new", 7, sessionsT0.Add(2 * time.Hour), idleSince.Add(time.Microsecond), now.Add(time.Microsecond)},
			{"idle", 7, sessionsT0.Add(3 * time.Hour), idleSince, now.Add(time.Hour)},
			{"ended", 7, sessionsT0.Add(4 * time.Hour), now, now},
			{"other", 8, sessionsT0.Add(5 * time.Hour), now, now.Add(time.Hour)},
		}
		for _, r := range rows {
			bs := sessionRow(r.id, r.user, r.created)
			bs.LastSeenAt, bs.ExpiresAt = r.seen, r.end
			if err := s.CreateSession(ctx, bs); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.UserSessions(ctx, 7, now, idleSince)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if want := []string{"new", "mid-a", "mid-b", "old"}; !slices.Equal(ids, want) {
			t.Errorf("listed %v, want %v", ids, want)
		}
		if len(list) > 0 && !equalSession(list[0], func() BrowserSession {
			bs := sessionRow("new", 7, sessionsT0.Add(2*time.Hour))
			bs.LastSeenAt, bs.ExpiresAt = idleSince.Add(time.Microsecond), now.Add(time.Microsecond)
			return bs
		}()) {
			t.Errorf("first listed %+v", list[0])
		}
	})
}

// TestDeleteEndedSessions: the sweep removes the sessions past their
// absolute end or idle, keeps the others, and works through more than one
// batch.
func TestDeleteEndedSessions(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		sessionsUsers(t, s, 7)
		now := sessionsT0.Add(10 * 24 * time.Hour)
		idleSince := now.Add(-3 * 24 * time.Hour)
		create := func(id string, seen, end time.Time) {
			t.Helper()
			bs := sessionRow(id, 7, sessionsT0)
			bs.LastSeenAt, bs.ExpiresAt = seen, end
			if err := s.CreateSession(ctx, bs); err != nil {
				t.Fatal(err)
			}
		}
		create("live", idleSince.Add(time.Microsecond), now.Add(time.Microsecond))
		create("idle", idleSince, now.Add(time.Hour))
		create("ended", now, now)
		// More ended ones than one batch holds.
		const many = database.SweepBatch + 17
		for first := 0; first < many; first += 500 {
			var rows []*ent.BrowserSessionCreate
			for i := first; i < min(first+500, many); i++ {
				id := "x" + strconv.Itoa(i)
				rows = append(rows, s.db.BrowserSession.Create().SetID(id).SetTokenHash("hash-"+id).SetUserID(7).
					SetAuthTime(sessionsT0).SetCreatedAt(sessionsT0).SetLastSeenAt(now).SetExpiresAt(now.Add(-time.Hour)))
			}
			s.db.BrowserSession.CreateBulk(rows...).ExecX(ctx)
		}
		n, err := s.DeleteEndedSessions(ctx, now, idleSince)
		if err != nil || n != many+2 {
			t.Errorf("DeleteEndedSessions = %d, %v; want %d", n, err, many+2)
		}
		if ids := s.db.BrowserSession.Query().IDsX(ctx); !slices.Equal(ids, []string{"live"}) {
			t.Errorf("left %v, want live alone", ids)
		}
	})
}

// TestDeleteEndedSessionsOldestFirst: each batch of the session sweep
// takes the sessions that ended first, whatever order they were written
// in (see TestDeleteExpiredTokensOldestFirst). The rows are written newest
// end first; the sweep is stopped after its first batch. On every engine.
func TestDeleteEndedSessionsOldestFirst(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		const extra = 200
		bg := context.Background()
		sessionsUsers(t, s, 7)
		now := sessionsT0.Add(10 * 24 * time.Hour)
		for first := 0; first < database.SweepBatch+extra; first += 500 {
			var rows []*ent.BrowserSessionCreate
			for i := first; i < min(first+500, database.SweepBatch+extra); i++ {
				id := fmt.Sprintf("s-%05d", i)
				rows = append(rows, s.db.BrowserSession.Create().SetID(id).SetTokenHash("h-"+id).SetUserID(7).
					SetAuthTime(sessionsT0).SetCreatedAt(sessionsT0).SetLastSeenAt(now).
					SetExpiresAt(now.Add(-time.Duration(i+1)*time.Second)))
			}
			s.db.BrowserSession.CreateBulk(rows...).ExecX(bg)
		}
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		counted := sweepFirstBatchOnly(s, browsersession.Table, cancel)
		n, err := counted.DeleteEndedSessions(ctx, now, now.Add(-3*24*time.Hour))
		if n != database.SweepBatch || !errors.Is(err, context.Canceled) {
			t.Fatalf("DeleteEndedSessions stopped after its first batch = %d, %v; want %d, context.Canceled", n, err, database.SweepBatch)
		}
		left := s.db.BrowserSession.Query().Order(browsersession.ByID()).IDsX(bg)
		want := make([]string, extra)
		for i := range want {
			want[i] = fmt.Sprintf("s-%05d", i)
		}
		if !slices.Equal(left, want) {
			t.Errorf("after one batch %d sessions are left (from %v), want the %d that ended last", len(left), left[:min(3, len(left))], extra)
		}
	})
}
