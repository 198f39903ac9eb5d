package main

import (
	"context"
	"iter"
	"math"
	"strings"
	"testing"
	"time"

	"idp/database/databasetest"
	"idp/storage"
)

// TestLoadScale writes a small scale load into databases that idp's
// migration created: every row must be accepted by the schema and read
// back through storage as it was made, the split and the expired share
// must be what the spec says, and the live chains must be the unexpired
// ones.
func TestLoadScale(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			url := e.NewURL(t)
			st := storage.New(databasetest.Open(t, url))
			now := time.Now().UTC()
			spec := scaleSpec{Users: 50, Tokens: 1000, ExpiredShare: 0.2, Client: "mobile", Now: now, Salt: 7}
			var log strings.Builder
			res, err := loadScale(ctx, url, spec, &log)
			if err != nil {
				t.Fatal(err)
			}
			// The server's cache beside the tables, in the report and
			// in the load's lines; SQLite has none of its own.
			if e.Name == "sqlite" {
				if res.Cache != nil {
					t.Errorf("cache on SQLite: %+v", res.Cache)
				}
			} else if c := res.Cache; c == nil || c.Bytes <= 0 || c.TableBytes <= 0 || !strings.Contains(log.String(), c.String()) {
				t.Errorf("cache %+v; log:\n%s", c, log.String())
			}
			refresh, access, sessions := spec.scaleCounts()
			if refresh+access+sessions != 1000 || access != 200 || sessions != 100 {
				t.Fatalf("split %d/%d/%d", refresh, access, sessions)
			}
			for table, want := range map[string]int{"users": 50, "refresh_chains": refresh, "access_tokens": access, "browser_sessions": sessions} {
				if res.Rows[table] != want {
					t.Errorf("%s: reported %d rows, want %d", table, res.Rows[table], want)
				}
			}

			// The first row of each table, read back: on an empty
			// database the load numbers its users from 1.
			spec.FirstUserID = 1
			if u, err := st.UserByUsername(ctx, "scale1"); err != nil || u.ID != 1 || u.Email != "scale1@example.com" || !u.EmailVerified || u.Gender != storage.GenderFemale || u.LastName != "User 0" {
				t.Errorf("user scale1: %+v, %v", u, err)
			}
			chain := firstOf(scaleChains(spec))
			if c, err := st.RefreshChainWithUser(ctx, chain.ID); err != nil || c.Hash != chain.Hash || c.PrevHash != chain.PrevHash || c.Generation != scaleGeneration || !c.Active || c.User == nil || c.User.ID != 1 {
				t.Errorf("chain %s: %+v, %v", chain.ID, c, err)
			}
			tok := firstOf(scaleAccessTokens(spec))
			if req, err := st.AccessTokenRequest(ctx, tok.ID); err != nil || string(req) != string(tok.Request) {
				t.Errorf("access token %s: %s, %v", tok.ID, req, err)
			}
			sess := firstOf(scaleSessions(spec))
			if bs, err := st.SessionByTokenHash(ctx, sess.TokenHash); err != nil || bs.ID != sess.ID || bs.UserID != 1 || len(bs.Methods) != 1 || bs.Methods[0] != "pwd" {
				t.Errorf("session %s: %+v, %v", sess.ID, bs, err)
			}

			ls, err := measureLoginSize(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if want := refresh * 4 / 5; ls.LiveChains != want || ls.Bytes <= 0 || ls.Users != 50 {
				t.Errorf("login size %+v, want %d live chains and a size", ls, want)
			}
			// What the sweep deletes: tokens a minute past expiry, and
			// sessions past theirs (the live ones were seen within the
			// hour).
			if n, err := st.DeleteExpiredTokens(ctx, now.Add(-time.Minute)); err != nil || n != refresh/5+access/5 {
				t.Errorf("expired tokens: %d, %v; want %d", n, err, refresh/5+access/5)
			}
			if n, err := st.DeleteEndedSessions(ctx, now, now.Add(-2*time.Hour)); err != nil || n != sessions/5 {
				t.Errorf("ended sessions: %d, %v; want %d", n, err, sessions/5)
			}
			// A second load on the same database adds rows of its own.
			spec.Salt = 8
			if _, err := loadScale(ctx, url, spec, nil); err != nil {
				t.Errorf("second load: %v", err)
			}
			if n, err := st.UserCount(ctx); err != nil || n != 100 {
				t.Errorf("users after the second load: %d, %v", n, err)
			}
		})
	}
}

// firstOf is the first value of seq.
func firstOf[T any](seq iter.Seq[T]) T {
	for v := range seq {
		return v
	}
	var zero T
	return zero
}

func TestScaleCacheString(t *testing.T) {
	for _, tc := range []struct {
		c    scaleCache
		want string
	}{
		{scaleCache{"innodb_buffer_pool_size", 128 << 20, 1503238554}, "buffer pool 128 MiB holds 9% of the tables' 1.4 GiB"},
		{scaleCache{"shared_buffers", 128 << 20, 64 << 20}, "shared buffers 128 MiB hold 100% of the tables' 64 MiB"},
		{scaleCache{"innodb_buffer_pool_size", 2 << 30, 0}, "buffer pool 2.0 GiB holds 100% of the tables' 0 MiB"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestLoginSizeCheck(t *testing.T) {
	c := loginSizeCheck(&loginSize{Bytes: 1 << 20, LiveChains: 16, Users: 100})
	if c.Value != 65536 || c.Result != "info" {
		t.Errorf("%+v, want 65536 bytes per login, info", c)
	}
	if c := loginSizeCheck(&loginSize{Bytes: 1 << 20}); c.Value != 0 || c.Result != "info" {
		t.Errorf("no live chain: %+v", c)
	}
}

func TestScaleChecks(t *testing.T) {
	before := &Report{Scenarios: []ScenarioResult{{Name: "userinfo", OKRate: 1000}, {Name: "refresh", OKRate: 100}, {Name: "stats", OKRate: 10}}}
	at := &Report{Scenarios: []ScenarioResult{{Name: "userinfo", OKRate: 950}, {Name: "refresh", OKRate: 50}, {Name: "stats", Skipped: "no client"}}}
	got := map[string]Check{}
	for _, c := range scaleChecks(before, at, 100, 1100) {
		got[c.Target] = c
	}
	if len(got) != 3 {
		t.Fatalf("checks %v, want userinfo, refresh and stats only", got)
	}
	if c := got["scale userinfo"]; c.Result != "pass" || c.Ratio != 0.95 || c.Want != 0.9 {
		t.Errorf("userinfo %+v", c)
	}
	if c := got["scale refresh"]; c.Result != "FAIL" || c.Ratio != 0.5 {
		t.Errorf("refresh %+v", c)
	}
	if c := got["scale stats"]; c.Result != "n/a" {
		t.Errorf("stats %+v", c)
	}
}

// TestScaleChecksStatsPerUserID: stats lists every user, so at scale it is
// judged by the user ids it serves per second, not by its calls.
func TestScaleChecksStatsPerUserID(t *testing.T) {
	tests := []struct {
		name           string
		before, at     float64 // calls/s
		users, atUsers int
		want           string
		ratio          float64
	}{
		{"flat per id", 10, 1, 100, 1000, "pass", 1},
		{"slower per id", 10, 0.5, 100, 1000, "FAIL", 0.5},
		{"no user count: per call", 10, 1, 0, 0, "FAIL", 0.1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := &Report{Scenarios: []ScenarioResult{{Name: "stats", OKRate: tc.before}}}
			at := &Report{Scenarios: []ScenarioResult{{Name: "stats", OKRate: tc.at}}}
			cs := scaleChecks(before, at, tc.users, tc.atUsers)
			if len(cs) != 1 {
				t.Fatalf("checks %+v, want stats", cs)
			}
			if c := cs[0]; c.Result != tc.want || math.Abs(c.Ratio-tc.ratio) > 1e-9 {
				t.Errorf("%+v, want %s at %v", c, tc.want, tc.ratio)
			}
		})
	}
}

func TestBenchScaleFlags(t *testing.T) {
	var out strings.Builder
	// -no-sqlite with no server configured would bench nothing.
	if err := cmdBench(context.Background(), []string{"-idp", "/nonexistent", "-no-sqlite"}, func(string) string { return "" }, &out, &out); err == nil || !strings.Contains(err.Error(), "-no-sqlite") {
		t.Errorf("-no-sqlite without a server: %v", err)
	}
	err := cmdBench(context.Background(), []string{"-idp", "/nonexistent", "-scale", "-scale-users", "0"}, func(string) string { return "" }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "-scale-users") {
		t.Errorf("-scale-users 0: %v", err)
	}
}

// TestSeedUsers: the bench's seeded users are numbered 1..n, and the
// server's next sign-up takes the next id.
func TestSeedUsers(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			url := e.NewURL(t)
			st := storage.New(databasetest.Open(t, url))
			if err := seedUsers(ctx, url, 2500); err != nil {
				t.Fatal(err)
			}
			if u, err := st.UserByUsername(ctx, "seed2500"); err != nil || u.ID != 2500 || u.Email != "seed2500@example.com" || u.Gender != storage.GenderFemale {
				t.Errorf("seed2500: %+v, %v", u, err)
			}
			if n, err := st.UserCount(ctx); err != nil || n != 2500 {
				t.Errorf("%d users, %v; want 2500", n, err)
			}
			u, err := st.CreateUser(ctx, storage.NewUser{Username: "signup", Email: "signup@example.com", PasswordHash: "x"})
			if err != nil || u.ID != 2501 {
				t.Errorf("sign-up after the seed: %+v, %v; want id 2501", u, err)
			}
		})
	}
}
