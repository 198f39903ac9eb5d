package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
)

// bulkSeq yields n values, the i-th made by f.
func bulkSeq[T any](n int, f func(i int) T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := range n {
			if !yield(f(i)) {
				return
			}
		}
	}
}

// bulkTableRows counts a table's rows.
func bulkTableRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.sql.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBulkLoad loads more rows of each kind than one INSERT and one
// transaction carry, and reads them back through the server's own reads.
func TestBulkLoad(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		before, err := s.LastUserID(ctx)
		if err != nil || before != 0 {
			t.Fatalf("LastUserID on an empty database: %d, %v", before, err)
		}
		// Past one transaction's rows, and not a multiple of one
		// INSERT's: a full commit, full statements and a short one.
		const nUsers = bulkCommitRows + 1234
		genders := []Gender{GenderFemale, GenderMale, ""}
		user := func(i int) User {
			id := int64(i + 1)
			return User{ID: id, Username: fmt.Sprintf("bulk%d", id), Email: fmt.Sprintf("bulk%d@example.com", id),
				EmailVerified: i%2 == 0, PasswordHash: "x", FirstName: "Bulk", LastName: fmt.Sprint("User ", i),
				Gender: genders[i%len(genders)], CreatedAt: now.Add(-time.Duration(i) * time.Second), UpdatedAt: now, PasswordChangedAt: now}
		}
		n, err := s.LoadUsers(ctx, bulkSeq(nUsers, user))
		if err != nil || n != nUsers {
			t.Fatalf("LoadUsers: %d, %v", n, err)
		}
		if got := bulkTableRows(t, s, "users"); got != nUsers {
			t.Errorf("%d users in the table, want %d", got, nUsers)
		}
		if c, err := s.UserCount(ctx); err != nil || c != nUsers {
			t.Errorf("UserCount: %d, %v", c, err)
		}
		if last, err := s.LastUserID(ctx); err != nil || last != nUsers {
			t.Errorf("LastUserID: %d, %v; want %d", last, err, nUsers)
		}
		for _, i := range []int{0, 2, nUsers - 1} {
			want := user(i)
			if want.Gender == "" {
				want.Gender = GenderUnspecified
			}
			u, err := s.UserByID(ctx, want.ID)
			if err != nil {
				t.Fatalf("UserByID(%d): %v", want.ID, err)
			}
			if u.Username != want.Username || u.Email != want.Email || u.EmailVerified != want.EmailVerified || u.PasswordHash != "x" ||
				u.LastName != want.LastName || u.Gender != want.Gender || u.HasPicture() ||
				!u.CreatedAt.Equal(want.CreatedAt) || !u.PasswordChangedAt.Equal(now) {
				t.Errorf("user %d: %+v, want %+v", want.ID, u, want)
			}
			if u, err := s.UserByUsername(ctx, want.Username); err != nil || u.ID != want.ID {
				t.Errorf("UserByUsername(%s): %+v, %v", want.Username, u, err)
			}
		}
		// Explicit ids leave no sequence behind: the next sign-up takes
		// the next id.
		next, err := s.CreateUser(ctx, NewUser{Username: "after", Email: "after@example.com", PasswordHash: "x"})
		if err != nil || next.ID != nUsers+1 {
			t.Fatalf("CreateUser after the load: %+v, %v; want id %d", next, err, nUsers+1)
		}

		const nChains = 5000
		chain := func(i int) BulkChain {
			c := BulkChain{
				TokenRecord: TokenRecord{ID: fmt.Sprintf("chain-%d", i), RequestID: fmt.Sprintf("grant-%d", i), ClientID: "mobile",
					Subject: fmt.Sprint(i%nUsers + 1), RequestedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), Request: []byte(`{"id":"r"}`)},
				Hash: fmt.Sprintf("hash-%d", i), Generation: 3, PrevHash: fmt.Sprintf("prev-%d", i), RotatedAt: now,
				Access: fmt.Sprintf("access-%d", i), Active: true,
			}
			if i%4 == 0 { // a quarter expired
				c.ExpiresAt = now.Add(-time.Hour)
			}
			if i%10 == 1 { // and some not rotated, or ended
				c.PrevHash, c.Active = "", false
			}
			return c
		}
		if n, err := s.LoadRefreshChains(ctx, bulkSeq(nChains, chain)); err != nil || n != nChains {
			t.Fatalf("LoadRefreshChains: %d, %v", n, err)
		}
		for _, i := range []int{0, 1, 2, nChains - 1} {
			want := chain(i)
			c, err := s.RefreshChainWithUser(ctx, want.ID)
			if err != nil {
				t.Fatalf("RefreshChainWithUser(%s): %v", want.ID, err)
			}
			if c.Hash != want.Hash || c.PrevHash != want.PrevHash || c.Generation != 3 || c.Active != want.Active ||
				string(c.Request) != `{"id":"r"}` || !c.RotatedAt.Equal(now) || c.User == nil || fmt.Sprint(c.User.ID) != want.Subject {
				t.Errorf("chain %s: %+v", want.ID, c)
			}
		}
		// The access token issued with the newest refresh is the chain's.
		if req, err := s.ChainAccessTokenRequest(ctx, "chain-2", "access-2"); err != nil || string(req) != `{"id":"r"}` {
			t.Errorf("ChainAccessTokenRequest: %s, %v", req, err)
		}
		live := 0
		for i := range nChains {
			if c := chain(i); c.Active && c.ExpiresAt.After(now) {
				live++
			}
		}
		if got, err := s.LiveChainCount(ctx, now); err != nil || got != live {
			t.Errorf("LiveChainCount: %d, %v; want %d", got, err, live)
		}

		const nTokens = 3000
		token := func(i int) TokenRecord {
			return TokenRecord{ID: fmt.Sprintf("at-%d", i), RequestID: fmt.Sprintf("agrant-%d", i), ClientID: "mobile",
				Subject: fmt.Sprint(i + 1), RequestedAt: now, ExpiresAt: now.Add(time.Hour), Request: fmt.Appendf(nil, `{"n":%d}`, i)}
		}
		if n, err := s.LoadAccessTokens(ctx, bulkSeq(nTokens, token)); err != nil || n != nTokens {
			t.Fatalf("LoadAccessTokens: %d, %v", n, err)
		}
		if got := bulkTableRows(t, s, "access_tokens"); got != nTokens {
			t.Errorf("%d access tokens, want %d", got, nTokens)
		}
		if req, err := s.AccessTokenRequest(ctx, "at-2999"); err != nil || string(req) != `{"n":2999}` {
			t.Errorf("AccessTokenRequest: %s, %v", req, err)
		}
		if ok, err := s.AccessTokenActive(ctx, "at-7", "8", ""); err != nil || !ok {
			t.Errorf("AccessTokenActive: %v, %v", ok, err)
		}

		const nSessions = 4000
		session := func(i int) BrowserSession {
			bs := BrowserSession{ID: fmt.Sprintf("sid-%d", i), TokenHash: fmt.Sprintf("th-%d", i), UserID: int64(i + 1),
				AuthTime: now, Methods: []string{"pwd"}, UserAgent: "Bulk/1.0", Remember: i%3 == 0,
				CreatedAt: now.Add(-time.Minute), LastSeenAt: now, ExpiresAt: now.Add(24 * time.Hour)}
			if i%2 == 1 {
				bs.Methods = []string{"pwd", "hwk"}
			}
			return bs
		}
		if n, err := s.LoadSessions(ctx, bulkSeq(nSessions, session)); err != nil || n != nSessions {
			t.Fatalf("LoadSessions: %d, %v", n, err)
		}
		for _, i := range []int{0, 1, nSessions - 1} {
			want := session(i)
			bs, err := s.SessionByTokenHash(ctx, want.TokenHash)
			if err != nil {
				t.Fatalf("SessionByTokenHash(%s): %v", want.TokenHash, err)
			}
			if bs.ID != want.ID || bs.UserID != want.UserID || !slices.Equal(bs.Methods, want.Methods) || bs.Remember != want.Remember ||
				bs.UserAgent != "Bulk/1.0" || !bs.LastSeenAt.Equal(now) || !bs.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("session %s: %+v, want %+v", want.ID, bs, want)
			}
		}
		if list, err := s.UserSessions(ctx, 2, now, now.Add(-time.Hour)); err != nil || len(list) != 1 || list[0].ID != "sid-1" {
			t.Errorf("UserSessions(2): %+v, %v", list, err)
		}

		size, err := s.DatabaseSize(ctx)
		if err != nil || size <= 0 {
			t.Errorf("DatabaseSize: %d, %v", size, err)
		}

		// On PostgreSQL the planner knows the loaded rows at once, not
		// from autovacuum's next pass: reltuples is -1 for a table never
		// analyzed, and the number of rows (or, past ANALYZE's sample, an
		// estimate of it) after.
		if s.dialect == dialect.Postgres {
			for table, rows := range map[string]int{"users": nUsers, "refresh_chains": nChains, "access_tokens": nTokens, "browser_sessions": nSessions} {
				var est float64
				if err := s.sql.QueryRowContext(ctx, "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)", table).Scan(&est); err != nil {
					t.Fatal(err)
				}
				if est < 0.9*float64(rows) || est > 1.1*float64(rows) {
					t.Errorf("%s: the planner estimates %.0f rows after loading %d", table, est, rows)
				}
			}
		}
	})
}

// TestBulkLoadConflict: a row the schema refuses fails the load with the
// storage error, and the rows of the transactions committed before it
// stay.
func TestBulkLoadConflict(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		const n = bulkCommitRows + 10
		users := bulkSeq(n, func(i int) User {
			name := fmt.Sprint("u", i)
			if i == n-1 {
				name = "u0" // taken by the first
			}
			return User{ID: int64(i + 1), Username: name, Email: name + fmt.Sprint(i, "@example.com"), PasswordHash: "x",
				CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
		})
		written, err := s.LoadUsers(ctx, users)
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Field != "username" {
			t.Fatalf("LoadUsers with a taken username: %v, want a conflict on username", err)
		}
		committed := bulkCommitRows / bulkRowsPerInsert(s.dialect, 12) * bulkRowsPerInsert(s.dialect, 12)
		if got := bulkTableRows(t, s, "users"); written != committed || got != committed {
			t.Errorf("%d rows reported, %d in the table; want the first transaction's %d", written, got, committed)
		}
	})
}

func TestBulkRowsPerInsert(t *testing.T) {
	for _, tc := range []struct {
		dia  string
		cols int
		want int
	}{{dialect.SQLite, 12, 2730}, {dialect.MySQL, 12, 4000}, {dialect.Postgres, 20, 3276}} {
		if got := bulkRowsPerInsert(tc.dia, tc.cols); got != tc.want || got*tc.cols > bulkMaxParams(tc.dia) {
			t.Errorf("bulkRowsPerInsert(%s, %d) = %d, want %d", tc.dia, tc.cols, got, tc.want)
		}
	}
}

// innodbDirtyPages counts the pages of s's tables in InnoDB's buffer pool
// that are changed and not yet written to their files. An
// OLDEST_MODIFICATION of 1 is a page written already that MariaDB
// removes from its flush list lazily: not dirty.
func innodbDirtyPages(t *testing.T, s *Store, tables []string) int {
	t.Helper()
	var n int
	q := "SELECT COUNT(*) FROM information_schema.INNODB_BUFFER_PAGE WHERE OLDEST_MODIFICATION > 1 AND TABLE_NAME IN (" +
		strings.TrimSuffix(strings.Repeat("CONCAT('`', DATABASE(), '`.`', ?, '`'), ", len(tables)), ", ") + ")"
	args := make([]any, len(tables))
	for i, table := range tables {
		args[i] = table
	}
	if err := s.sql.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSettleBulkLoad: after a load, SettleBulkLoad leaves nothing of it in
// the log or the cache: PostgreSQL has checkpointed past the load's WAL,
// SQLite's WAL holds no frames, and InnoDB's buffer pool holds no dirty
// page of the loaded tables (which InnoDB's page cleaner would otherwise
// write in the next seconds, leaving some for much later).
func TestSettleBulkLoad(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		user := func(i int) User {
			id := int64(i + 1)
			now := time.Now().UTC().Truncate(time.Microsecond)
			return User{ID: id, Username: fmt.Sprintf("settle%d", id), Email: fmt.Sprintf("settle%d@example.com", id),
				PasswordHash: "x", CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
		}
		if _, err := s.LoadUsers(ctx, bulkSeq(2000, user)); err != nil {
			t.Fatal(err)
		}
		var loadEnd string
		var dirtyBefore int
		var other *sql.Conn
		switch s.dialect {
		case dialect.MySQL:
			dirtyBefore = innodbDirtyPages(t, s, bulkTables())
			t.Logf("dirty pages before settle: %d", dirtyBefore)
			// Taken before SettleBulkLoad takes its own.
			c, err := s.sql.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			other = c
		case dialect.Postgres:
			// The WAL position the load reached: a checkpoint that
			// covers the load starts its redo at or after it.
			// pg_control_checkpoint reads the control file CHECKPOINT
			// has written when it returns (the statistics views are
			// updated later, and another test's CREATE DATABASE may
			// merge its checkpoint with ours).
			if err := s.sql.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&loadEnd); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SettleBulkLoad(ctx); err != nil {
			t.Fatalf("SettleBulkLoad: %v", err)
		}
		switch s.dialect {
		case dialect.Postgres:
			var covered bool
			if err := s.sql.QueryRowContext(ctx, "SELECT redo_lsn >= $1::pg_lsn FROM pg_control_checkpoint()", loadEnd).Scan(&covered); err != nil {
				t.Fatal(err)
			}
			if !covered {
				t.Errorf("the last checkpoint's redo starts before the load's end (%s); want a checkpoint after the load", loadEnd)
			}
		case dialect.SQLite:
			var busy, frames, done int
			if err := s.sql.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
				t.Fatal(err)
			}
			if frames > 0 {
				t.Errorf("WAL after SettleBulkLoad: %d frames; want none", frames)
			}
		case dialect.MySQL:
			if n := innodbDirtyPages(t, s, bulkTables()); n > 0 {
				t.Errorf("%d dirty pages of the loaded tables after SettleBulkLoad (%d before); want none", n, dirtyBefore)
			}
			// The tables are unlocked again: a session still holding
			// FOR EXPORT's lock would block the writes of every other.
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := other.ExecContext(wctx, "UPDATE users SET first_name = 'Settled' WHERE id = 1"); err != nil {
				t.Errorf("a write on another connection after SettleBulkLoad: %v", err)
			}
		}
	})
}

// TestCacheFit: the server's cache size as the server reports the setting
// elsewhere, beside the tables' size; none on SQLite.
func TestCacheFit(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		fit, ok, err := s.CacheFit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		var setting string
		switch s.dialect {
		case dialect.SQLite:
			if ok {
				t.Errorf("CacheFit on SQLite: %+v, want none", fit)
			}
			return
		case dialect.MySQL:
			setting = "innodb_buffer_pool_size"
			var name string
			if err := s.sql.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'innodb_buffer_pool_size'").Scan(&name, &want); err != nil {
				t.Fatal(err)
			}
		case dialect.Postgres:
			setting = "shared_buffers"
			if err := s.sql.QueryRowContext(ctx, "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers' AND unit = '8kB'").Scan(&want); err != nil {
				t.Fatal(err)
			}
		}
		size, err := s.DatabaseSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || fit.Setting != setting || fit.CacheBytes != want || want <= 0 || fit.TableBytes != size {
			t.Errorf("CacheFit: %+v, %v; want %s of %d bytes beside %d bytes of tables", fit, ok, setting, want, size)
		}
	})
}

func TestCacheFitShare(t *testing.T) {
	for _, tc := range []struct {
		cache, tables int64
		want          float64
	}{{128, 1024, 0.125}, {1024, 128, 1}, {128, 0, 1}} {
		if got := (CacheFit{CacheBytes: tc.cache, TableBytes: tc.tables}).Share(); got != tc.want {
			t.Errorf("Share of %d over %d = %v, want %v", tc.cache, tc.tables, got, tc.want)
		}
	}
}
