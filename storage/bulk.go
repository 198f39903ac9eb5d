package storage

// Bulk loading, for the load generator (cmd/idp-load): users and token
// rows by the hundred thousand, in multi-row INSERTs, and the readings it
// takes of the database afterwards. Nothing here is for the server: a bulk
// load takes none of the locks the server's writes take (a token or
// session row is written without holding its user's row) and checks
// nothing the schema does not.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"time"

	"entgo.io/ent/dialect"

	"idp/ent/accesstoken"
	"idp/ent/browsersession"
	"idp/ent/refreshchain"
	"idp/ent/user"
)

// BulkChain is a refresh chain's row as LoadRefreshChains writes it: the
// login's record (TokenRecord.UserID is not read) and the newest token's
// state. PrevHash, Access and PrevAccess are NULL when empty.
type BulkChain struct {
	TokenRecord
	Hash       string
	Generation int64
	PrevHash   string
	RotatedAt  time.Time
	Access     string
	PrevAccess string
	Active     bool
}

// bulkMaxParams is the most placeholders one statement may have:
// SQLite's SQLITE_MAX_VARIABLE_NUMBER, and the 16-bit parameter count of
// the MySQL and PostgreSQL protocols.
func bulkMaxParams(dia string) int {
	if dia == dialect.SQLite {
		return 32766
	}
	return 65535
}

// bulkRowsPerInsert is how many rows of cols one INSERT carries on dia.
// Past a few thousand rows a statement gains nothing but size (MySQL's
// max_allowed_packet).
func bulkRowsPerInsert(dia string, cols int) int {
	return max(1, min(bulkMaxParams(dia)/cols, 4000))
}

// bulkCommitRows is about how many rows one transaction of a bulk load
// writes: one transaction per table would hold SQLite's whole WAL.
const bulkCommitRows = 50_000

// bulkInsert writes the rows of seq into table, each as the values of cols
// that appendRow appends to args, in INSERTs of as many rows as the
// dialect's parameter limit allows, committing every bulkCommitRows rows
// or so, and then updates the table's statistics (bulkAnalyze). It
// reports how many rows it wrote; on an error, the transactions committed
// before it stay. It does not join a transaction ctx carries:
// the load is its own series of transactions.
func bulkInsert[T any](ctx context.Context, s *Store, table string, cols []string, seq iter.Seq[T], appendRow func(args []any, row T) []any) (n int, err error) {
	per := bulkRowsPerInsert(s.dialect, len(cols))
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	insert := func(rows int) string {
		return s.rebind(head + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", "))
	}
	full := insert(per)
	commitEvery := max(per, bulkCommitRows/per*per)

	var tx *sql.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	args := make([]any, 0, per*len(cols))
	pending := 0 // rows in args
	exec := func(query string) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
		n += pending
		args, pending = args[:0], 0
		if n%commitEvery == 0 {
			err := tx.Commit()
			tx = nil
			return err
		}
		return nil
	}
	for r := range seq {
		if tx == nil {
			if tx, err = s.sql.BeginTx(ctx, nil); err != nil {
				return n, wrap(err)
			}
		}
		args = appendRow(args, r)
		if pending++; pending == per {
			if err := exec(full); err != nil {
				return n, wrap(err)
			}
		}
	}
	if pending > 0 {
		if err := exec(insert(pending)); err != nil {
			return n, wrap(err)
		}
	}
	if tx != nil {
		err := tx.Commit()
		tx = nil
		if err != nil {
			return n, wrap(err)
		}
	}
	return n, s.bulkAnalyze(ctx, table)
}

// bulkAnalyze brings the planner's statistics of table up to date after a
// bulk load, on PostgreSQL. Its planner otherwise works from what it knew
// before the load (for a table never analyzed: nothing, an estimate from
// the table's size) until autovacuum analyzes it, which may be a minute
// later, during whatever runs next, or never where autovacuum is off.
// InnoDB recalculates a table's statistics itself once a tenth of its rows
// have changed. SQLite has none unless asked (ANALYZE writes
// sqlite_stat1), and the server's queries are planned without them.
func (s *Store) bulkAnalyze(ctx context.Context, table string) error {
	if s.dialect != dialect.Postgres {
		return nil
	}
	if _, err := s.sql.ExecContext(ctx, "ANALYZE "+table); err != nil {
		return wrap(fmt.Errorf("storage: analyze %s: %w", table, err))
	}
	return nil
}

// bulkTables are the tables the bulk loads write.
func bulkTables() []string {
	return []string{user.Table, refreshchain.Table, accesstoken.Table, browsersession.Table}
}

// settlePurgeWait bounds how long SettleBulkLoad waits for InnoDB's purge,
// and settlePurgeBacklog is the purge backlog (committed transactions whose
// undo logs purge has yet to process) it waits for: a server that other
// clients keep writing to never reaches none.
const (
	settlePurgeWait    = time.Minute
	settlePurgeBacklog = 16
	settlePurgePoll    = 100 * time.Millisecond
)

// SettleBulkLoad finishes the writes a bulk load leaves to the database's
// background, so that they are not done while whatever runs next is
// measured: on PostgreSQL a CHECKPOINT (the load's gigabytes of WAL would
// otherwise be written to the tables by the next checkpoints), on SQLite a
// truncating WAL checkpoint. InnoDB ends a load with most of its buffer
// pool dirty and writes those pages out over the next seconds (at times
// leaving a few hundred dirty for minutes), and its purge works through
// the load's transactions after they commit. On MySQL SettleBulkLoad waits (up to
// settlePurgeWait) for purge to catch up, then writes the loaded tables'
// dirty pages with FLUSH TABLES … FOR EXPORT: the one statement that does,
// short of changing a global setting, which a load generator has no
// business doing to the server. The tables stay read-locked, and their
// purge stopped, only until the UNLOCK TABLES that follows on the same
// connection.
func (s *Store) SettleBulkLoad(ctx context.Context) error {
	var stmt string
	switch s.dialect {
	case dialect.Postgres:
		stmt = "CHECKPOINT"
	case dialect.SQLite:
		stmt = "PRAGMA wal_checkpoint(TRUNCATE)"
	case dialect.MySQL:
		if err := s.waitPurge(ctx); err != nil {
			return wrap(fmt.Errorf("storage: settle bulk load: %w", err))
		}
		return wrap(s.flushForExport(ctx, bulkTables()))
	default:
		return nil
	}
	if _, err := s.sql.ExecContext(ctx, stmt); err != nil {
		return wrap(fmt.Errorf("storage: settle bulk load: %w", err))
	}
	return nil
}

// waitPurge waits until InnoDB's purge backlog is at most
// settlePurgeBacklog, or settlePurgeWait has passed: a backlog that does
// not drain is another client's, and not a reason to fail the load. A
// server that does not report Innodb_history_list_length (MariaDB does)
// is not waited for.
func (s *Store) waitPurge(ctx context.Context) error {
	deadline := time.Now().Add(settlePurgeWait)
	for {
		var name string
		var backlog int64
		err := s.sql.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").Scan(&name, &backlog)
		if errors.Is(err, sql.ErrNoRows) || err == nil && backlog <= settlePurgeBacklog {
			return nil
		}
		if err != nil {
			return fmt.Errorf("purge backlog: %w", err)
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-time.After(settlePurgePoll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flushForExport writes InnoDB's dirty pages of tables to disk and
// releases the tables again, on a connection of its own: the lock FLUSH
// TABLES … FOR EXPORT takes belongs to the session, and a pooled
// connection still holding it would block every write to the tables.
func (s *Store) flushForExport(ctx context.Context, tables []string) error {
	conn, err := s.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("storage: settle bulk load: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES "+strings.Join(tables, ", ")+" FOR EXPORT"); err != nil {
		return fmt.Errorf("storage: settle bulk load: flush tables: %w", err)
	}
	// Unlocked even when ctx has ended since: the connection goes back to
	// the pool.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(uctx, "UNLOCK TABLES"); err != nil {
		// A session that may still hold the lock must not be reused.
		conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("storage: settle bulk load: unlock tables: %w", err)
	}
	return nil
}

// bulkNull is v, or NULL when v is empty.
func bulkNull(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// LoadUsers writes users with the ids, names and times they carry
// (a PictureKey of "" is none), and reports how many it wrote. The
// passwords are stored as given: a bulk-loaded user need not be able to
// log in. On PostgreSQL it then moves the users' id sequence past the
// largest id, which explicit ids leave behind: the next sign-up would
// take a taken id.
func (s *Store) LoadUsers(ctx context.Context, users iter.Seq[User]) (int, error) {
	cols := []string{user.FieldID, user.FieldUsername, user.FieldEmail, user.FieldEmailVerified, user.FieldPasswordHash,
		user.FieldFirstName, user.FieldLastName, user.FieldGender, user.FieldPictureKey,
		user.FieldCreatedAt, user.FieldUpdatedAt, user.FieldPasswordChangedAt}
	n, err := bulkInsert(ctx, s, user.Table, cols, users, func(args []any, u User) []any {
		gender := u.Gender
		if gender == "" {
			gender = GenderUnspecified
		}
		return append(args, u.ID, u.Username, u.Email, u.EmailVerified, u.PasswordHash, u.FirstName, u.LastName,
			string(gender), bulkNull(u.PictureKey), u.CreatedAt, u.UpdatedAt, u.PasswordChangedAt)
	})
	if err != nil || n == 0 || s.dialect != dialect.Postgres {
		return n, err
	}
	q := "SELECT setval(pg_get_serial_sequence('" + user.Table + "', '" + user.FieldID + "'), (SELECT MAX(" + user.FieldID + ") FROM " + user.Table + "))"
	if _, err := s.sql.ExecContext(ctx, q); err != nil {
		return n, wrap(fmt.Errorf("storage: users id sequence: %w", err))
	}
	return n, nil
}

// LoadRefreshChains writes chains as they are given, and reports how many
// it wrote.
func (s *Store) LoadRefreshChains(ctx context.Context, chains iter.Seq[BulkChain]) (int, error) {
	cols := []string{refreshchain.FieldID, refreshchain.FieldRequestID, refreshchain.FieldClientID, refreshchain.FieldSubject,
		refreshchain.FieldRequestedAt, refreshchain.FieldExpiresAt, refreshchain.FieldRequest,
		refreshchain.FieldHash, refreshchain.FieldGeneration, refreshchain.FieldPrevHash, refreshchain.FieldRotatedAt,
		refreshchain.FieldAccess, refreshchain.FieldPrevAccess, refreshchain.FieldActive}
	return bulkInsert(ctx, s, refreshchain.Table, cols, chains, func(args []any, c BulkChain) []any {
		return append(args, c.ID, c.RequestID, c.ClientID, c.Subject, c.RequestedAt, c.ExpiresAt, c.Request,
			c.Hash, c.Generation, bulkNull(c.PrevHash), c.RotatedAt, bulkNull(c.Access), bulkNull(c.PrevAccess), c.Active)
	})
}

// LoadAccessTokens writes access-token rows of their own (TokenRecord.UserID
// is not read), and reports how many it wrote.
func (s *Store) LoadAccessTokens(ctx context.Context, tokens iter.Seq[TokenRecord]) (int, error) {
	cols := []string{accesstoken.FieldID, accesstoken.FieldRequestID, accesstoken.FieldClientID, accesstoken.FieldSubject,
		accesstoken.FieldRequestedAt, accesstoken.FieldExpiresAt, accesstoken.FieldRequest}
	return bulkInsert(ctx, s, accesstoken.Table, cols, tokens, func(args []any, t TokenRecord) []any {
		return append(args, t.ID, t.RequestID, t.ClientID, t.Subject, t.RequestedAt, t.ExpiresAt, t.Request)
	})
}

// LoadSessions writes browser sessions, and reports how many it wrote.
// Methods are stored as ent stores them, a JSON array; nil is NULL.
func (s *Store) LoadSessions(ctx context.Context, sessions iter.Seq[BrowserSession]) (int, error) {
	cols := []string{browsersession.FieldID, browsersession.FieldTokenHash, browsersession.FieldUserID, browsersession.FieldAuthTime,
		browsersession.FieldMethods, browsersession.FieldUserAgent, browsersession.FieldRemember,
		browsersession.FieldCreatedAt, browsersession.FieldLastSeenAt, browsersession.FieldExpiresAt}
	var encodeErr error
	n, err := bulkInsert(ctx, s, browsersession.Table, cols, sessions, func(args []any, bs BrowserSession) []any {
		var methods any
		if bs.Methods != nil {
			b, err := json.Marshal(bs.Methods)
			if err != nil {
				encodeErr = err
			}
			methods = string(b)
		}
		return append(args, bs.ID, bs.TokenHash, bs.UserID, bs.AuthTime, methods, bs.UserAgent, bs.Remember,
			bs.CreatedAt, bs.LastSeenAt, bs.ExpiresAt)
	})
	// A []string always encodes; the check keeps a future field type's
	// failure from being written as an empty value.
	return n, errors.Join(err, encodeErr)
}

// LastUserID is the largest user id, 0 when there is no user: a bulk load
// numbers its users past it.
func (s *Store) LastUserID(ctx context.Context) (int64, error) {
	var id int64
	err := s.sql.QueryRowContext(ctx, "SELECT COALESCE(MAX("+user.FieldID+"), 0) FROM "+user.Table).Scan(&id)
	return id, wrap(err)
}

// UserCount is the number of users.
func (s *Store) UserCount(ctx context.Context) (int, error) {
	n, err := s.client(ctx).User.Query().Count(ctx)
	return n, wrap(err)
}

// LiveChainCount is the number of live logins at now: refresh chains
// active and unexpired.
func (s *Store) LiveChainCount(ctx context.Context, now time.Time) (int, error) {
	n, err := s.client(ctx).RefreshChain.Query().Where(refreshchain.Active(true), refreshchain.ExpiresAtGT(now)).Count(ctx)
	return n, wrap(err)
}

// DatabaseSize is the database's size in bytes: on SQLite its file and
// WAL, on MySQL and PostgreSQL the data and indexes of the database's
// (the current schema's) tables.
func (s *Store) DatabaseSize(ctx context.Context) (int64, error) {
	var n int64
	switch s.dialect {
	case dialect.SQLite:
		return s.sqliteFileSize(ctx)
	case dialect.MySQL:
		err := s.sql.QueryRowContext(ctx, "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n)
		return n, wrap(err)
	default:
		err := s.sql.QueryRowContext(ctx, "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()").Scan(&n)
		return n, wrap(err)
	}
}

// CacheFit is the database server's page cache beside the tables it
// caches: whether the database was sized for its data, which decides
// whether a read is served from memory or from disk.
type CacheFit struct {
	// Setting names the cache: innodb_buffer_pool_size, shared_buffers.
	Setting    string
	CacheBytes int64
	// TableBytes is what DatabaseSize reports.
	TableBytes int64
}

// Share is the part of the tables the cache can hold, at most 1.
func (c CacheFit) Share() float64 {
	if c.TableBytes <= 0 {
		return 1
	}
	return min(1, float64(c.CacheBytes)/float64(c.TableBytes))
}

// CacheFit reads the size of MySQL's InnoDB buffer pool or PostgreSQL's
// shared buffers, and of the database's tables. ok is false on SQLite,
// whose pages are cached by the operating system, beside everything
// else's.
func (s *Store) CacheFit(ctx context.Context) (fit CacheFit, ok bool, err error) {
	var q string
	switch s.dialect {
	case dialect.MySQL:
		fit.Setting, q = "innodb_buffer_pool_size", "SELECT @@innodb_buffer_pool_size"
	case dialect.Postgres:
		fit.Setting, q = "shared_buffers", "SELECT pg_size_bytes(current_setting('shared_buffers'))"
	default:
		return CacheFit{}, false, nil
	}
	if err := s.sql.QueryRowContext(ctx, q).Scan(&fit.CacheBytes); err != nil {
		return CacheFit{}, false, wrap(fmt.Errorf("storage: %s: %w", fit.Setting, err))
	}
	if fit.TableBytes, err = s.DatabaseSize(ctx); err != nil {
		return CacheFit{}, false, err
	}
	return fit, true, nil
}

// sqliteFileSize is the size of the main database's file and its WAL,
// found by the file name SQLite reports: what the database takes on disk,
// checkpointed or not.
func (s *Store) sqliteFileSize(ctx context.Context) (int64, error) {
	rows, err := s.sql.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return 0, wrap(err)
	}
	defer rows.Close()
	var path string
	for rows.Next() {
		var (
			seq        int
			name, file string
		)
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return 0, wrap(err)
		}
		if name == "main" {
			path = file
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, wrap(err)
	}
	if path == "" {
		return 0, errors.New("storage: the SQLite database has no file")
	}
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("storage: database size: %w", err)
		}
		total += st.Size()
	}
	return total, nil
}
