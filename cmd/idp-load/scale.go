package main

// The rows of the bench's scale mode: users, and token rows that look like
// those the server writes, inserted through idp's database package in
// batched multi-row INSERTs. Everything that knows the token tables'
// layout is in this file (scaleTokenTables, liveChainsQuery), so that a
// change of the refresh-token storage changes this file only.
//
// What it assumes of the schema (ent/schema/token.go, browsersession.go):
//   - refresh_chains holds one row per login, whatever its number of
//     rotations: the newest token's hash and generation, the one it
//     replaced (prev_hash, rotated_at), the access tokens of the newest two
//     refreshes. A chain is live while it is active and unexpired.
//   - access_tokens holds one row per access token of a password grant or
//     code exchange; the sweep deletes rows of both tables a minute past
//     expires_at.
//   - browser_sessions holds one row per signed-in browser; the sweep
//     deletes it past expires_at or idle past the idle lifetime.
// The rows are never presented: ids are SHA-256 hex of made-up
// signatures, and request is the JSON the server writes (a StoredRequest
// with a token.Session), for realistic row sizes.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/ory/fosite"

	"idp/database"
	"idp/oauth/fositestore"
	"idp/oauth/token"
)

// The split of the scale token rows between the tables, and the
// generation of every chain's newest token (rotations so far).
const (
	scaleAccessShare  = 0.2 // access_tokens
	scaleSessionShare = 0.1 // browser_sessions; the rest is refresh_chains
	scaleGeneration   = 4
)

// scaleSpec is what a scale load writes.
type scaleSpec struct {
	Users        int     // users added
	Tokens       int     // token rows, over refresh_chains, access_tokens and browser_sessions
	ExpiredShare float64 // of each table's rows, expired long enough for the sweep to delete
	Client       string  // the client the grants belong to
	Now          time.Time
	// FirstUserID is the id of the first user added; the tokens belong
	// to the added users. loadScale sets it past the table's largest id.
	FirstUserID int64
	// Salt makes the made-up signatures and grant ids of one load unlike
	// another's on the same database.
	Salt uint32
}

// scaleCounts splits spec.Tokens between the tables.
func (s scaleSpec) scaleCounts() (refresh, access, sessions int) {
	access = int(float64(s.Tokens) * scaleAccessShare)
	sessions = int(float64(s.Tokens) * scaleSessionShare)
	return s.Tokens - access - sessions, access, sessions
}

// expired reports whether the i-th chain (or row) of a table is one of the
// expired share: spread evenly, so that any prefix has the share too.
func (s scaleSpec) expired(i int) bool {
	return int(float64(i+1)*s.ExpiredShare) > int(float64(i)*s.ExpiredShare)
}

func (s scaleSpec) userID(i int) int64 { return s.FirstUserID + int64(i%max(s.Users, 1)) }

// signature is a made-up token signature, unique per salt, kind and number.
func (s scaleSpec) signature(kind string, i, j int) string {
	return fmt.Sprintf("scale-%08x-%s-%d-%d", s.Salt, kind, i, j)
}

// grantID looks like fosite's request ids (UUIDs), unique per salt, kind
// and number.
func (s scaleSpec) grantID(kind byte, i int) string {
	return fmt.Sprintf("%08x-0000-4000-8%03x-%012x", s.Salt, kind, i)
}

// tableRows is the rows of one table: n rows of cols, the i-th written
// into args by row.
type tableRows struct {
	table string
	cols  []string
	n     int
	row   func(i int, args []any) []any
}

// scaleUserRows are the added users, as seedUsers writes them: nobody
// logs in as them, so the hash is not one.
func scaleUserRows(s scaleSpec) tableRows {
	genders := []string{"female", "male", "female", "unspecified", "male"}
	return tableRows{
		table: "users",
		cols:  []string{"id", "username", "email", "email_verified", "password_hash", "first_name", "last_name", "gender", "created_at", "updated_at", "password_changed_at"},
		n:     s.Users,
		row: func(i int, args []any) []any {
			id := s.FirstUserID + int64(i)
			name := "scale" + strconv.FormatInt(id, 10)
			created := s.Now.Add(-time.Duration(i%(365*24)) * time.Hour)
			return append(args, id, name, name+"@example.com", i%2 == 0, "x", "Scale", "User "+strconv.Itoa(i),
				genders[i%len(genders)], created, created, created)
		},
	}
}

// storedRequest is the request column of a grant's token row, as
// fositestore.EncodeRequest writes it for a password grant.
func storedRequest(client, grant, subject string, requested, accessExp, refreshExp time.Time) []byte {
	sess, _ := json.Marshal(&token.Session{
		Subject:  subject,
		AuthTime: requested,
		ExpiresAt: map[fosite.TokenType]time.Time{
			fosite.AccessToken: accessExp, fosite.RefreshToken: refreshExp, fosite.IDToken: requested.Add(time.Hour),
		},
		UserAgent: "ScaleBench/1.0 (Linux; Android 14)",
	})
	scope := []string{"openid", "profile", "email", "offline_access"}
	b, _ := json.Marshal(fositestore.StoredRequest{
		ID: grant, RequestedAt: requested, ClientID: client,
		RequestedScope: scope, GrantedScope: scope,
		Form:    map[string][]string{"grant_type": {"password"}, "scope": {strings.Join(scope, " ")}},
		Session: sess,
	})
	return b
}

// scaleTokenTables are the token rows of s. A live row expires well after
// the bench ends, so that the expired share stays what it was when the
// sweep runs.
func scaleTokenTables(s scaleSpec) []tableRows {
	nRefresh, nAccess, nSessions := s.scaleCounts()
	const refreshTTL, accessTTL = 30 * 24 * time.Hour, 15 * time.Minute
	// A chain's times: an expired chain's newest token expired a day ago;
	// a live chain's last rotation is under 15 minutes old.
	rotated := func(chain int) time.Time {
		if s.expired(chain) {
			return s.Now.Add(-refreshTTL - 24*time.Hour)
		}
		return s.Now.Add(-time.Duration(chain%900) * time.Second)
	}
	refresh := tableRows{
		table: "refresh_chains",
		cols: []string{"id", "request_id", "client_id", "subject", "requested_at", "expires_at", "request",
			"hash", "generation", "prev_hash", "rotated_at", "access", "prev_access", "active"},
		n: nRefresh,
		row: func(chain int, args []any) []any {
			var id [12]byte
			binary.BigEndian.PutUint32(id[:], s.Salt)
			binary.BigEndian.PutUint64(id[4:], uint64(chain))
			grant := s.grantID('r', chain)
			subject := strconv.FormatInt(s.userID(chain), 10)
			at := rotated(chain)
			began := at.Add(-scaleGeneration * 20 * time.Minute)
			return append(args, base64.RawURLEncoding.EncodeToString(id[:]), grant, s.Client, subject,
				began, at.Add(refreshTTL), storedRequest(s.Client, grant, subject, at, at.Add(accessTTL), at.Add(refreshTTL)),
				fositestore.RowID(s.signature("r", chain, scaleGeneration)), scaleGeneration,
				fositestore.RowID(s.signature("r", chain, scaleGeneration-1)), at,
				fositestore.RowID(s.signature("ra", chain, scaleGeneration)), fositestore.RowID(s.signature("ra", chain, scaleGeneration-1)), true)
		},
	}
	access := tableRows{
		table: "access_tokens",
		cols:  []string{"id", "request_id", "client_id", "subject", "requested_at", "expires_at", "request"},
		n:     nAccess,
		row: func(i int, args []any) []any {
			grant := s.grantID('a', i)
			subject := strconv.FormatInt(s.userID(i), 10)
			at, exp := s.Now.Add(-time.Duration(i%600)*time.Second), s.Now.Add(2*time.Hour)
			if s.expired(i) {
				at = s.Now.Add(-time.Hour - time.Duration(i%3600)*time.Second)
				exp = at.Add(accessTTL)
			}
			return append(args, fositestore.RowID(s.signature("a", i, 0)), grant, s.Client, subject, at, exp,
				storedRequest(s.Client, grant, subject, at, exp, at.Add(refreshTTL)))
		},
	}
	sessions := tableRows{
		table: "browser_sessions",
		cols:  []string{"id", "token_hash", "user_id", "auth_time", "methods", "user_agent", "remember", "created_at", "last_seen_at", "expires_at"},
		n:     nSessions,
		row: func(i int, args []any) []any {
			var id [16]byte
			binary.BigEndian.PutUint32(id[:], s.Salt)
			binary.BigEndian.PutUint64(id[8:], uint64(i))
			sum := sha256.Sum256([]byte(s.signature("s", i, 0)))
			created := s.Now.Add(-time.Duration(i%(48*3600)) * time.Second)
			seen, exp := s.Now.Add(-time.Duration(i%3600)*time.Second), created.Add(14*24*time.Hour)
			if s.expired(i) {
				created = s.Now.Add(-15 * 24 * time.Hour)
				seen, exp = created.Add(time.Hour), created.Add(14*24*time.Hour)
			}
			return append(args, base64.RawURLEncoding.EncodeToString(id[:]), hex.EncodeToString(sum[:]), s.userID(i),
				created, `["pwd"]`, "Mozilla/5.0 (X11; Linux x86_64) ScaleBench/1.0", i%3 == 0, created, seen, exp)
		},
	}
	return []tableRows{refresh, access, sessions}
}

// liveChainsQuery counts the live logins: refresh chains active and
// unexpired.
const liveChainsQuery = "SELECT COUNT(*) FROM refresh_chains WHERE active = ? AND expires_at > ?"

// maxParams is the most placeholders one statement may have: SQLite's
// SQLITE_MAX_VARIABLE_NUMBER, and the 16-bit parameter count of the MySQL
// and PostgreSQL protocols.
func maxParams(dia string) int {
	if dia == dialect.SQLite {
		return 32766
	}
	return 65535
}

// rowsPerInsert is how many rows of cols one INSERT carries on dia. Past a
// few thousand rows a statement gains nothing but size (MySQL's
// max_allowed_packet).
func rowsPerInsert(dia string, cols int) int {
	return max(1, min(maxParams(dia)/cols, 4000))
}

// scaleLoad is what a scale load wrote and how long it took.
type scaleLoad struct {
	Rows    map[string]int `json:"rows"`
	Seconds float64        `json:"seconds"`
	// RowsPerSec is all rows over the whole load.
	RowsPerSec float64 `json:"rows_per_sec"`
}

// loadScale adds spec's users and token rows to the database at dbURL,
// whose schema idp's migration created.
func loadScale(ctx context.Context, dbURL string, spec scaleSpec, log io.Writer) (*scaleLoad, error) {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var maxID int64
	if err := db.SQL.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM users").Scan(&maxID); err != nil {
		return nil, err
	}
	spec.FirstUserID = maxID + 1
	start := time.Now()
	res := &scaleLoad{Rows: map[string]int{}}
	for _, t := range append([]tableRows{scaleUserRows(spec)}, scaleTokenTables(spec)...) {
		t0 := time.Now()
		if err := insertRows(ctx, db, t); err != nil {
			return nil, fmt.Errorf("%s: %w", t.table, err)
		}
		res.Rows[t.table] = t.n
		if log != nil {
			el := time.Since(t0)
			fmt.Fprintf(log, "    %-16s %9d rows in %v (%.0f rows/s)\n", t.table, t.n, el.Round(time.Millisecond), float64(t.n)/max(el.Seconds(), 1e-9))
		}
	}
	if db.Dialect == dialect.Postgres && spec.Users > 0 {
		// Explicit ids leave the identity's sequence behind: the
		// server's next signup would take a taken id.
		if _, err := db.SQL.ExecContext(ctx, "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT MAX(id) FROM users))"); err != nil {
			return nil, fmt.Errorf("users id sequence: %w", err)
		}
	}
	el := time.Since(start)
	res.Seconds = el.Seconds()
	total := 0
	for _, n := range res.Rows {
		total += n
	}
	res.RowsPerSec = float64(total) / max(el.Seconds(), 1e-9)
	return res, nil
}

// insertRows writes t in multi-row INSERTs, as many rows each as the
// dialect's parameter limit allows, committing every 50,000 rows or so:
// one transaction per table would hold SQLite's whole WAL.
func insertRows(ctx context.Context, db *database.DB, t tableRows) error {
	per := rowsPerInsert(db.Dialect, len(t.cols))
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.cols)), ", ") + ")"
	head := "INSERT INTO " + t.table + " (" + strings.Join(t.cols, ", ") + ") VALUES "
	full := database.Rebind(db.Dialect, head+strings.TrimSuffix(strings.Repeat(row+", ", per), ", "))
	commitEvery := max(per, 50_000/per*per)
	args := make([]any, 0, per*len(t.cols))
	for first := 0; first < t.n; first += commitEvery {
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for batch := first; batch < min(first+commitEvery, t.n); batch += per {
			last := min(batch+per, t.n)
			query := full
			if last-batch < per {
				query = database.Rebind(db.Dialect, head+strings.TrimSuffix(strings.Repeat(row+", ", last-batch), ", "))
			}
			args = args[:0]
			for i := batch; i < last; i++ {
				args = t.row(i, args)
			}
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// dbSize is the database's size in bytes: the SQLite file and its WAL, or
// the data and indexes of the database's tables on MySQL and PostgreSQL.
func dbSize(ctx context.Context, db *database.DB, sqlitePath string) (int64, error) {
	switch db.Dialect {
	case dialect.SQLite:
		var total int64
		for _, p := range []string{sqlitePath, sqlitePath + "-wal"} {
			st, err := os.Stat(p)
			if err != nil {
				if os.IsNotExist(err) && p != sqlitePath {
					continue
				}
				return 0, err
			}
			total += st.Size()
		}
		return total, nil
	case dialect.MySQL:
		var n int64
		err := db.SQL.QueryRowContext(ctx, "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n)
		return n, err
	default:
		var n int64
		err := db.SQL.QueryRowContext(ctx, "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()").Scan(&n)
		return n, err
	}
}

// loginSize is the database's size per live login.
type loginSize struct {
	Bytes      int64 `json:"bytes"`
	LiveChains int   `json:"live_chains"`
	// Users is every user, most of them seeded without a login: their
	// rows are in Bytes too.
	Users int `json:"users"`
}

// measureLoginSize reads the database's size and counts its live logins.
func measureLoginSize(ctx context.Context, dbURL, sqlitePath string) (*loginSize, error) {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var ls loginSize
	if err := db.SQL.QueryRowContext(ctx, database.Rebind(db.Dialect, liveChainsQuery), true, time.Now().UTC()).Scan(&ls.LiveChains); err != nil {
		return nil, fmt.Errorf("live chains: %w", err)
	}
	if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&ls.Users); err != nil {
		return nil, err
	}
	if ls.Bytes, err = dbSize(ctx, db, sqlitePath); err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	return &ls, nil
}

func rebind(dia, q string) string { return database.Rebind(dia, q) }
