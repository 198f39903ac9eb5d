package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

// TestRunAgainstFake runs every scenario and the flood for a moment against
// a fake idp, through run as the command line does, and checks the table,
// the JSON and what the fake saw.
func TestRunAgainstFake(t *testing.T) {
	f, srv := newFakeIDP(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{
		"-url", srv.URL + "/", "-scenarios", "all,flood,loginflood", "-duration", "150ms", "-concurrency", "3",
		"-login-concurrency", "2", "-rounds", "2", "-flood-concurrency", "8", "-flood-duration", "150ms",
		"-client-id", f.serviceID, "-client-secret", f.secret, "-pid", strconv.Itoa(os.Getpid()), "-json", jsonPath,
	}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}

	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if len(rep.Scenarios) != len(allScenarios) {
		t.Fatalf("%d scenarios in the report, want %d", len(rep.Scenarios), len(allScenarios))
	}
	for i, s := range rep.Scenarios {
		if s.Name != allScenarios[i] {
			t.Errorf("scenario %d is %q, want %q", i, s.Name, allScenarios[i])
		}
		if s.Skipped != "" || s.OK == 0 || s.OK != s.Requests || len(s.Errors) > 0 {
			t.Errorf("%s: %d requests, %d ok, errors %v, skipped %q; want all ok", s.Name, s.Requests, s.OK, s.Errors, s.Skipped)
		}
		if s.OKRate <= 0 || s.P50Ms > s.P90Ms || s.P90Ms > s.P99Ms || s.P99Ms > s.MaxMs {
			t.Errorf("%s: rate %.1f, p50 %.2f p90 %.2f p99 %.2f max %.2f", s.Name, s.OKRate, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
		}
		want := 3
		if s.Name == "password" || s.Name == "signup" || s.Name == "loginpage" || s.Name == "refresh2" {
			want = 2
		}
		if s.Concurrency != want {
			t.Errorf("%s ran with %d workers, want %d", s.Name, s.Concurrency, want)
		}
	}
	if rep.SignaturesPerRefresh != 2 {
		t.Errorf("signatures per refresh = %d, want 2 (access token and ID token)", rep.SignaturesPerRefresh)
	}
	if rep.SignaturesPerCode != 2 {
		t.Errorf("signatures per code = %d, want 2 (access token and ID token)", rep.SignaturesPerCode)
	}
	if rep.Rounds != 2 || rep.Users != 3 {
		t.Errorf("rounds %d, users %d; want 2 and 3", rep.Rounds, rep.Users)
	}
	if len(rep.Notes) > 0 {
		t.Errorf("notes %q; want none (the fake answers If-None-Match with 304)", rep.Notes)
	}

	fl := rep.Flood
	if fl == nil {
		t.Fatal("no flood in the report")
	}
	if fl.OK == 0 || fl.Failed503 == 0 || fl.OtherFailures != 0 || fl.Failed503+fl.OK != fl.Requests || fl.Errors["503"] != fl.Failed503 {
		t.Errorf("flood: %d requests, %d ok, %d×503, %d other, errors %v; want some of each of ok and 503 and nothing else",
			fl.Requests, fl.OK, fl.Failed503, fl.OtherFailures, fl.Errors)
	}
	if fl.PeakRSSMiB <= 0 || fl.PeakRSSMiB < fl.StartRSSMiB {
		t.Errorf("flood: peak RSS %.1f MiB from %.1f MiB; want the test process's own", fl.PeakRSSMiB, fl.StartRSSMiB)
	}
	if want := float64(runtime.GOMAXPROCS(0)*64 + 150); fl.BudgetMiB != want {
		t.Errorf("flood budget %.0f MiB, want hash concurrency (GOMAXPROCS) × 64 MiB + 150 = %.0f", fl.BudgetMiB, want)
	}

	lf := rep.LoginFlood
	if lf == nil {
		t.Fatal("no login flood in the report")
	}
	if lf.Name != "loginflood" || lf.OK == 0 || lf.Failed503 == 0 || lf.OtherFailures != 0 || lf.Failed503+lf.OK != lf.Requests || lf.Errors["503"] != lf.Failed503 || !lf.Pass {
		t.Errorf("login flood %q: %d requests, %d ok, %d×503, %d other, errors %v, pass %v; want some 303s and 503s and nothing else",
			lf.Name, lf.Requests, lf.OK, lf.Failed503, lf.OtherFailures, lf.Errors, lf.Pass)
	}

	f.mu.Lock()
	reused, signups := f.reused, len(f.users)
	codeReuses, csrfRefused, pageLogins, authorizes := f.codeReuses, f.csrfRefused, f.pageLogins, f.requests["/oauth2/authorize"]
	f.mu.Unlock()
	if codeReuses != 0 || csrfRefused != 0 {
		t.Errorf("the fake saw %d codes redeemed twice or unknown and %d CSRF tokens refused; want none", codeReuses, csrfRefused)
	}
	// Every worker of authorize signed in once (3), the rest are the
	// loginpage and loginflood POSTs.
	if auth := rep.Scenario("authorize"); authorizes < auth.OK+3+3 || pageLogins < 3+rep.Scenario("loginpage").OK+lf.OK {
		t.Errorf("the fake saw %d authorization requests and %d logins; want one per authorize iteration (%d) and the preparation's",
			authorizes, pageLogins, auth.OK)
	}
	if reused != 0 {
		t.Errorf("the fake saw %d refresh tokens used twice: a chain was not rotated in order", reused)
	}
	if signups <= 3 {
		t.Errorf("%d users signed up; want the 3 prepared ones and the signup scenario's", signups)
	}

	out := stdout.String()
	for _, want := range append(slices.Clone(allScenarios), "flood", "loginflood", "p99 ms", "refresh: 2 RS256 signatures per grant",
		"authorize: 2 RS256 signatures per code redemption", "loginflood: peak RSS") {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestServiceScenariosSkipWithoutClient checks that client_credentials and
// stats are reported as skipped, not failed, without a service client, and
// that the JSON says why.
func TestServiceScenariosSkipWithoutClient(t *testing.T) {
	_, srv := newFakeIDP(t)
	cfg, err := parseLoadArgs([]string{"-url", srv.URL, "-scenarios", "healthz,client_credentials,stats", "-duration", "50ms"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 3 {
		t.Fatalf("%d scenarios, want 3", len(rep.Scenarios))
	}
	for _, s := range rep.Scenarios[1:] {
		if s.Skipped == "" || s.Requests != 0 {
			t.Errorf("%s: skipped %q after %d requests; want skipped", s.Name, s.Skipped, s.Requests)
		}
	}
	var buf bytes.Buffer
	writeTable(&buf, rep)
	if !strings.Contains(buf.String(), "skipped: needs -client-id") {
		t.Errorf("table does not say why:\n%s", buf.String())
	}
}

// TestRunLoadsInterleaves: with two servers, each scenario's slice of each
// round runs against the first server and then the second before the next
// slice begins, so that both see the same stretch of the machine's time.
func TestRunLoadsInterleaves(t *testing.T) {
	var mu sync.Mutex
	var seen []string // "server path", one per run of requests in a row
	record := func(name string, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; strings.HasSuffix(p, "healthz") || strings.HasSuffix(p, "jwks.json") {
				mu.Lock()
				if e := name + " " + p; len(seen) == 0 || seen[len(seen)-1] != e {
					seen = append(seen, e)
				}
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
	var cfgs []loadConfig
	for _, name := range []string{"A", "B"} {
		f, _ := newFakeIDP(t)
		srv := httptest.NewServer(record(name, f))
		t.Cleanup(srv.Close)
		cfg, err := parseLoadArgs([]string{"-url", srv.URL, "-scenarios", "healthz,jwks", "-duration", "200ms", "-rounds", "2"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	reps, err := runLoads(context.Background(), cfgs...)
	if err != nil {
		t.Fatal(err)
	}
	const jwks = "/.well-known/jwks.json"
	// Each server is checked (its health and keys) before the rounds.
	want := []string{"A /healthz", "A " + jwks, "B /healthz", "B " + jwks}
	for range 2 {
		for _, p := range []string{"/healthz", jwks} {
			want = append(want, "A "+p, "B "+p)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("requests went, in runs:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2", len(reps))
	}
	for i, rep := range reps {
		for _, s := range rep.Scenarios {
			if s.OK == 0 {
				t.Errorf("server %d, %s: no request answered", i+1, s.Name)
			}
		}
		if rep.URL != cfgs[i].BaseURL {
			t.Errorf("report %d is of %s, want %s", i+1, rep.URL, cfgs[i].BaseURL)
		}
	}
}

// TestProfiles: with -profile-dir, each scenario's slice of each round is
// profiled through the server's debug listener, for the slice's length,
// into <scenario>-<round>.pprof.
func TestProfiles(t *testing.T) {
	_, srv := newFakeIDP(t)
	var mu sync.Mutex
	var asked []string
	debug := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.String())
		mu.Unlock()
		if r.URL.Path != "/debug/pprof/profile" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("profile " + r.URL.Query().Get("seconds")))
	}))
	defer debug.Close()
	dir := filepath.Join(t.TempDir(), "profiles")
	cfg, err := parseLoadArgs([]string{"-url", srv.URL, "-scenarios", "healthz,jwks", "-duration", "2s", "-rounds", "2",
		"-debug-url", debug.URL, "-profile-dir", dir}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"healthz-1", "healthz-2", "jwks-1", "jwks-2"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pprof"))
		if err != nil || string(b) != "profile 1" {
			t.Errorf("%s.pprof: %q, %v; want the debug listener's 1-second profile", name, b, err)
		}
	}
	if len(asked) != 4 {
		t.Errorf("the debug listener was asked %v, want 4 profiles", asked)
	}
	if _, err := parseLoadArgs([]string{"-profile-dir", dir}, noEnv, io.Discard); err == nil {
		t.Error("-profile-dir without -debug-url accepted")
	}
}

// TestBrowserScenariosSkip: when the sign-in cannot be walked (here the
// client does not have the redirect URI), authorize and loginpage are
// skipped with the reason, and the other scenarios run.
func TestBrowserScenariosSkip(t *testing.T) {
	_, srv := newFakeIDP(t)
	cfg, err := parseLoadArgs([]string{"-url", srv.URL, "-scenarios", "healthz,authorize,loginpage,loginflood", "-duration", "50ms",
		"-concurrency", "2", "-flood-duration", "50ms", "-redirect-uri", "http://127.0.0.1/elsewhere"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h := rep.Scenario("healthz"); h == nil || h.OK == 0 {
		t.Errorf("healthz did not run: %+v", h)
	}
	for _, s := range []*ScenarioResult{rep.Scenario("authorize"), rep.Scenario("loginpage"), &rep.LoginFlood.ScenarioResult} {
		if !strings.Contains(s.Skipped, "GET /oauth2/authorize: 400") || s.Requests != 0 {
			t.Errorf("%s: skipped %q after %d requests; want skipped for the 400", s.Name, s.Skipped, s.Requests)
		}
	}
	for _, c := range checks(rep, Limits{SignPerSec: 1, HashesPerSec: 1}, 0) {
		if c.Target == "authorize" || c.Target == "loginpage" || c.Target == "loginflood" {
			t.Errorf("a skipped scenario produced the check %+v", c)
		}
	}
}

func TestNoServer(t *testing.T) {
	_, srv := newFakeIDP(t)
	srv.Close()
	cfg, err := parseLoadArgs([]string{"-url", srv.URL, "-scenarios", "healthz", "-duration", "50ms"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runLoad(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no server at") {
		t.Errorf("runLoad against a closed server: %v, want no server at …", err)
	}
}

func TestParseLoadArgs(t *testing.T) {
	cfg, err := parseLoadArgs(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Scenarios, allScenarios) || cfg.Duration != 5*time.Second || cfg.Concurrency != 16 ||
		cfg.Client != "mobile" || cfg.BaseURL != "http://127.0.0.1:8080" || cfg.Rounds != 1 || cfg.FloodConcurrency != 200 {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Argon2MemoryKiB != 64*1024 || cfg.HashConcurrency < 1 {
		t.Errorf("flood budget inputs: %d KiB, %d slots; want idp's defaults", cfg.Argon2MemoryKiB, cfg.HashConcurrency)
	}
	if got := cfg.workers("password"); got != 2*cfg.HashConcurrency {
		t.Errorf("password workers = %d, want twice the hashing slots (%d)", got, 2*cfg.HashConcurrency)
	}
	if got := cfg.workers("jwks"); got != 16 {
		t.Errorf("jwks workers = %d, want -concurrency", got)
	}

	env := map[string]string{"IDP_HASH_CONCURRENCY": "3", "IDP_ARGON2_MEMORY_KIB": "32768"}
	cfg, err = parseLoadArgs([]string{"-scenarios", " jwks, flood ,", "-login-concurrency", "5"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Scenarios, []string{"jwks", "flood"}) || cfg.HashConcurrency != 3 || cfg.Argon2MemoryKiB != 32768 || cfg.workers("signup") != 5 {
		t.Errorf("got %+v", cfg)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-scenarios", "jwks,nope"}, `unknown scenario "nope"`},
		{[]string{"-scenarios", ","}, "no scenario"},
		{[]string{"-client-id", "svc"}, "go together"},
		{[]string{"-concurrency", "0"}, "at least 1"},
		{[]string{"-duration", "0s"}, "must be positive"},
		{[]string{"-rounds", "0"}, "-rounds"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		if _, err := parseLoadArgs(tt.args, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseLoadArgs(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
	}
	if _, err := parseLoadArgs(nil, func(k string) string {
		return map[string]string{"IDP_KEY_SIZE": "1024"}[k]
	}, io.Discard); err == nil {
		t.Error("IDP_KEY_SIZE=1024 accepted")
	}
	if err := run(context.Background(), []string{"-url", "ftp://x"}, noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-url") {
		t.Errorf("ftp URL: %v", err)
	}
	if err := run(context.Background(), []string{"-h"}, noEnv, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
