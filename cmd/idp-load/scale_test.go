package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"idp/database/databasetest"
)

// TestLoadScale writes a small scale load into databases that idp's
// migration created: every row must be accepted by the schema, the split
// and the expired share must be what the spec says, and the live chains
// must be the unexpired ones.
func TestLoadScale(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			url := e.NewURL(t)
			db := databasetest.Open(t, url)
			now := time.Now().UTC()
			spec := scaleSpec{Users: 50, Tokens: 1000, ExpiredShare: 0.2, Client: "mobile", Now: now, Salt: 7}
			res, err := loadScale(ctx, url, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			refresh, access, sessions := spec.scaleCounts()
			if refresh+access+sessions != 1000 || access != 200 || sessions != 100 {
				t.Fatalf("split %d/%d/%d", refresh, access, sessions)
			}
			for table, want := range map[string]int{"users": 50, "refresh_chains": refresh, "access_tokens": access, "browser_sessions": sessions} {
				var n int
				if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != want || res.Rows[table] != want {
					t.Errorf("%s: %d rows, reported %d; want %d", table, n, res.Rows[table], want)
				}
			}
			// What the sweep deletes: a minute past expiry.
			for table, want := range map[string]int{"refresh_chains": refresh / 5, "access_tokens": access / 5} {
				var n int
				if err := db.SQL.QueryRowContext(ctx, rebind(db.Dialect, "SELECT COUNT(*) FROM "+table+" WHERE expires_at < ?"), now.Add(-time.Minute)).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != want {
					t.Errorf("%s: %d expired rows, want %d", table, n, want)
				}
			}
			ls, err := measureLoginSize(ctx, url, "")
			if e.Name == "sqlite" {
				ls, err = measureLoginSize(ctx, url, url[len("sqlite://"):])
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := refresh * 4 / 5; ls.LiveChains != want || ls.Bytes <= 0 || ls.Users != 50 {
				t.Errorf("login size %+v, want %d live chains and a size", ls, want)
			}
			// A second load on the same database adds rows of its own.
			spec.Salt = 8
			if _, err := loadScale(ctx, url, spec, nil); err != nil {
				t.Errorf("second load: %v", err)
			}
		})
	}
}

func TestRowsPerInsert(t *testing.T) {
	for _, tc := range []struct {
		dia  string
		cols int
		want int
	}{{"sqlite3", 11, 2978}, {"mysql", 11, 4000}, {"postgres", 20, 3276}} {
		if got := rowsPerInsert(tc.dia, tc.cols); got != tc.want || got*tc.cols > maxParams(tc.dia) {
			t.Errorf("rowsPerInsert(%s, %d) = %d, want %d", tc.dia, tc.cols, got, tc.want)
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
	err := cmdBench(context.Background(), []string{"-idp", "/nonexistent", "-scale", "-scale-users", "0"}, func(string) string { return "" }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "-scale-users") {
		t.Errorf("-scale-users 0: %v", err)
	}
}
