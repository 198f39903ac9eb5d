package main

// The rows of the bench's scale mode: users, and token rows that look like
// those the server writes, written by storage's bulk loads (storage/bulk.go)
// in batched multi-row INSERTs. This file makes up the rows' contents
// (scaleChains, scaleAccessTokens, scaleSessions); storage knows the
// tables.
//
// What it assumes of the rows (ent/schema/token.go, browsersession.go):
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
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"idp/database"
	"idp/oauth/fositestore"
	"idp/oauth/token"
	"idp/storage"
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

// scaleRows yields n rows, the i-th made by row.
func scaleRows[T any](n int, row func(i int) T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := range n {
			if !yield(row(i)) {
				return
			}
		}
	}
}

// scaleUsers are the added users, as seedUsers writes them: nobody logs
// in as them, so the hash is not one.
func scaleUsers(s scaleSpec) iter.Seq[storage.User] {
	genders := []storage.Gender{storage.GenderFemale, storage.GenderMale, storage.GenderFemale, storage.GenderUnspecified, storage.GenderMale}
	return scaleRows(s.Users, func(i int) storage.User {
		id := s.FirstUserID + int64(i)
		name := "scale" + strconv.FormatInt(id, 10)
		created := s.Now.Add(-time.Duration(i%(365*24)) * time.Hour)
		return storage.User{ID: id, Username: name, Email: name + "@example.com", EmailVerified: i%2 == 0, PasswordHash: "x",
			FirstName: "Scale", LastName: "User " + strconv.Itoa(i), Gender: genders[i%len(genders)],
			CreatedAt: created, UpdatedAt: created, PasswordChangedAt: created}
	})
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

// A live token row expires well after the bench ends, so that the
// expired share stays what it was when the sweep runs.
const scaleRefreshTTL, scaleAccessTTL = 30 * 24 * time.Hour, 15 * time.Minute

// scaleChains are the refresh chains of s, each of scaleGeneration
// rotations. An expired chain's newest token expired a day ago; a live
// chain's last rotation is under 15 minutes old.
func scaleChains(s scaleSpec) iter.Seq[storage.BulkChain] {
	nRefresh, _, _ := s.scaleCounts()
	return scaleRows(nRefresh, func(chain int) storage.BulkChain {
		var id [12]byte
		binary.BigEndian.PutUint32(id[:], s.Salt)
		binary.BigEndian.PutUint64(id[4:], uint64(chain))
		grant := s.grantID('r', chain)
		subject := strconv.FormatInt(s.userID(chain), 10)
		at := s.Now.Add(-time.Duration(chain%900) * time.Second)
		if s.expired(chain) {
			at = s.Now.Add(-scaleRefreshTTL - 24*time.Hour)
		}
		began := at.Add(-scaleGeneration * 20 * time.Minute)
		return storage.BulkChain{
			TokenRecord: storage.TokenRecord{
				ID: base64.RawURLEncoding.EncodeToString(id[:]), RequestID: grant, ClientID: s.Client, Subject: subject,
				RequestedAt: began, ExpiresAt: at.Add(scaleRefreshTTL),
				Request: storedRequest(s.Client, grant, subject, at, at.Add(scaleAccessTTL), at.Add(scaleRefreshTTL)),
			},
			Hash:       fositestore.RowID(s.signature("r", chain, scaleGeneration)),
			Generation: scaleGeneration,
			PrevHash:   fositestore.RowID(s.signature("r", chain, scaleGeneration-1)),
			RotatedAt:  at,
			Access:     fositestore.RowID(s.signature("ra", chain, scaleGeneration)),
			PrevAccess: fositestore.RowID(s.signature("ra", chain, scaleGeneration-1)),
			Active:     true,
		}
	})
}

// scaleAccessTokens are the access-token rows of s: a live one issued in
// the last ten minutes and valid for two hours, an expired one expired
// between 45 minutes and an hour and three quarters ago.
func scaleAccessTokens(s scaleSpec) iter.Seq[storage.TokenRecord] {
	_, nAccess, _ := s.scaleCounts()
	return scaleRows(nAccess, func(i int) storage.TokenRecord {
		grant := s.grantID('a', i)
		subject := strconv.FormatInt(s.userID(i), 10)
		at, exp := s.Now.Add(-time.Duration(i%600)*time.Second), s.Now.Add(2*time.Hour)
		if s.expired(i) {
			at = s.Now.Add(-time.Hour - time.Duration(i%3600)*time.Second)
			exp = at.Add(scaleAccessTTL)
		}
		return storage.TokenRecord{ID: fositestore.RowID(s.signature("a", i, 0)), RequestID: grant, ClientID: s.Client, Subject: subject,
			RequestedAt: at, ExpiresAt: exp, Request: storedRequest(s.Client, grant, subject, at, exp, at.Add(scaleRefreshTTL))}
	})
}

// scaleSessions are the browser sessions of s: a live one created in the
// last two days and seen in the last hour, an expired one created 15 days
// ago, past its 14-day lifetime.
func scaleSessions(s scaleSpec) iter.Seq[storage.BrowserSession] {
	_, _, nSessions := s.scaleCounts()
	methods := []string{"pwd"}
	return scaleRows(nSessions, func(i int) storage.BrowserSession {
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
		return storage.BrowserSession{ID: base64.RawURLEncoding.EncodeToString(id[:]), TokenHash: hex.EncodeToString(sum[:]), UserID: s.userID(i),
			AuthTime: created, Methods: methods, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) ScaleBench/1.0", Remember: i%3 == 0,
			CreatedAt: created, LastSeenAt: seen, ExpiresAt: exp}
	})
}

// scaleLoad is what a scale load wrote and how long it took.
type scaleLoad struct {
	Rows    map[string]int `json:"rows"`
	Seconds float64        `json:"seconds"`
	// RowsPerSec is all rows over the whole load.
	RowsPerSec float64 `json:"rows_per_sec"`
	// Cache is the server's page cache beside the tables after the load;
	// none on SQLite.
	Cache *scaleCache `json:"cache,omitempty"`
}

// scaleCache is storage.CacheFit as the bench reports it: a scale pass
// whose tables are many times its server's cache reads from disk what the
// empty pass read from memory, and its ratios say so rather than anything
// of idp's.
type scaleCache struct {
	Setting    string `json:"setting"` // innodb_buffer_pool_size, shared_buffers
	Bytes      int64  `json:"bytes"`
	TableBytes int64  `json:"table_bytes"`
}

func newScaleCache(fit storage.CacheFit) *scaleCache {
	return &scaleCache{Setting: fit.Setting, Bytes: fit.CacheBytes, TableBytes: fit.TableBytes}
}

// String reads "buffer pool 128 MiB holds 9% of the tables' 1.4 GiB".
func (c *scaleCache) String() string {
	name, verb := c.Setting, "holds"
	switch c.Setting {
	case "innodb_buffer_pool_size":
		name = "buffer pool"
	case "shared_buffers":
		name, verb = "shared buffers", "hold"
	}
	fit := storage.CacheFit{CacheBytes: c.Bytes, TableBytes: c.TableBytes}
	return fmt.Sprintf("%s %s %s %.0f%% of the tables' %s", name, formatBytes(c.Bytes), verb, 100*fit.Share(), formatBytes(c.TableBytes))
}

// formatBytes is n in MiB, or in GiB from 1 GiB on.
func formatBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// loadScale adds spec's users and token rows to the database at dbURL,
// whose schema idp's migration created.
func loadScale(ctx context.Context, dbURL string, spec scaleSpec, log io.Writer) (*scaleLoad, error) {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := storage.New(db)
	maxID, err := st.LastUserID(ctx)
	if err != nil {
		return nil, err
	}
	spec.FirstUserID = maxID + 1
	start := time.Now()
	res := &scaleLoad{Rows: map[string]int{}}
	// By table, as the bench reports them.
	for _, t := range []struct {
		table string
		load  func(context.Context) (int, error)
	}{
		{"users", func(ctx context.Context) (int, error) { return st.LoadUsers(ctx, scaleUsers(spec)) }},
		{"refresh_chains", func(ctx context.Context) (int, error) { return st.LoadRefreshChains(ctx, scaleChains(spec)) }},
		{"access_tokens", func(ctx context.Context) (int, error) { return st.LoadAccessTokens(ctx, scaleAccessTokens(spec)) }},
		{"browser_sessions", func(ctx context.Context) (int, error) { return st.LoadSessions(ctx, scaleSessions(spec)) }},
	} {
		t0 := time.Now()
		n, err := t.load(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.table, err)
		}
		res.Rows[t.table] = n
		if log != nil {
			el := time.Since(t0)
			fmt.Fprintf(log, "    %-16s %9d rows in %v (%.0f rows/s)\n", t.table, n, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
		}
	}
	// The settling counts as part of the load: it is the rest of the
	// load's writes, done now rather than during the scenarios.
	t0 := time.Now()
	if err := st.SettleBulkLoad(ctx); err != nil {
		return nil, err
	}
	if log != nil {
		fmt.Fprintf(log, "    %-16s settled in %v\n", "", time.Since(t0).Round(time.Millisecond))
	}
	el := time.Since(start)
	// Read after the load's timing: it is a reading, not part of it.
	if fit, ok, err := st.CacheFit(ctx); err != nil {
		return nil, fmt.Errorf("cache size: %w", err)
	} else if ok {
		res.Cache = newScaleCache(fit)
		if log != nil {
			fmt.Fprintf(log, "    %-16s %v\n", "", res.Cache)
		}
	}
	res.Seconds = el.Seconds()
	total := 0
	for _, n := range res.Rows {
		total += n
	}
	res.RowsPerSec = float64(total) / max(el.Seconds(), 1e-9)
	return res, nil
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
func measureLoginSize(ctx context.Context, dbURL string) (*loginSize, error) {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := storage.New(db)
	var ls loginSize
	if ls.LiveChains, err = st.LiveChainCount(ctx, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("live chains: %w", err)
	}
	if ls.Users, err = st.UserCount(ctx); err != nil {
		return nil, err
	}
	if ls.Bytes, err = st.DatabaseSize(ctx); err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	return &ls, nil
}
