package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(d, tt.p); got != tt.want {
			t.Errorf("p%v of 1..100 ms = %v, want %v", tt.p, got, tt.want)
		}
	}
	three := []time.Duration{1, 2, 3}
	if got := percentile(three, 50); got != 2 {
		t.Errorf("p50 of 1,2,3 = %v, want 2 (nearest rank)", got)
	}
	if got := percentile(three, 99); got != 3 {
		t.Errorf("p99 of 1,2,3 = %v, want 3", got)
	}
	if got := percentile([]time.Duration{7}, 50); got != 7 {
		t.Errorf("p50 of one sample = %v", got)
	}
}

func TestRecorder(t *testing.T) {
	r := newRecorder()
	for i := 10; i >= 1; i-- { // out of order: result sorts
		r.add(200, time.Duration(i)*time.Millisecond, true)
	}
	r.add(503, 20*time.Millisecond, false)
	r.add(503, 30*time.Millisecond, false)
	r.add(0, 40*time.Millisecond, false)
	res := r.result("x", 4, 2*time.Second)
	if res.Requests != 13 || res.OK != 10 || res.Rate != 6.5 || res.OKRate != 5 {
		t.Errorf("requests %d ok %d rate %v ok rate %v; want 13, 10, 6.5, 5", res.Requests, res.OK, res.Rate, res.OKRate)
	}
	if res.P50Ms != 7 || res.P90Ms != 30 || res.P99Ms != 40 || res.MaxMs != 40 {
		t.Errorf("p50 %v p90 %v p99 %v max %v; want 7, 30, 40, 40", res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs)
	}
	if res.Errors["503"] != 2 || res.Errors["transport"] != 1 || len(res.Errors) != 2 {
		t.Errorf("errors %v", res.Errors)
	}
	if got := formatErrors(res.Errors); got != "503×2 transport×1" {
		t.Errorf("formatErrors = %q", got)
	}
	if got := formatErrors(nil); got != "-" {
		t.Errorf("formatErrors(nil) = %q", got)
	}
	if empty := newRecorder().result("y", 1, 0); empty.Rate != 0 || empty.P99Ms != 0 {
		t.Errorf("empty result: %+v", empty)
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{
		Scenarios: []ScenarioResult{
			{Name: "healthz", Concurrency: 16, Requests: 1000, OK: 1000, Rate: 500, OKRate: 500, P50Ms: 1, P90Ms: 2, P99Ms: 3},
			{Name: "stats", Concurrency: 16, Skipped: "needs -client-id"},
		},
		Flood: &FloodResult{ScenarioResult: ScenarioResult{Name: "flood", Concurrency: 200, Requests: 10, OK: 4, Errors: map[string]int{"503": 6}},
			PeakRSSMiB: 300, StartRSSMiB: 100, PeakSource: "VmHWM", BudgetMiB: 278, Failed503: 6},
		LoginFlood: &FloodResult{ScenarioResult: ScenarioResult{Name: "loginflood", Concurrency: 200, Requests: 10, OK: 3, Errors: map[string]int{"503": 7}},
			PeakRSSMiB: 250, StartRSSMiB: 200, PeakSource: "VmHWM", BudgetMiB: 278, Failed503: 7, Pass: true},
		SignaturesPerRefresh: 2,
		SignaturesPerCode:    2,
	}
	var buf bytes.Buffer
	if err := writeTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"healthz", "500.0", "skipped: needs -client-id", "503×6",
		"peak RSS 300 MiB (VmHWM; 100 MiB before) vs budget 278 MiB", "FAIL", "2 RS256 signatures per grant (access token + ID token)",
		"loginflood: peak RSS 250 MiB (VmHWM; 200 MiB before) vs budget 278 MiB; 7 failed with 503 (the login page's busy answer), 0 failed otherwise: pass",
		"authorize: 2 RS256 signatures per code redemption (access token + ID token), so its ceiling is RS256 signatures/s ÷ 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestChecks(t *testing.T) {
	rep := &Report{
		Users: 16,
		Scenarios: []ScenarioResult{
			{Name: "healthz", OKRate: 1000},
			{Name: "discovery", OKRate: 900},
			{Name: "jwks", OKRate: 700},
			{Name: "userinfo", OKRate: 300},
			{Name: "profile", OKRate: 250},
			{Name: "refresh", OKRate: 400},
			{Name: "authorize", OKRate: 300},
			{Name: "password", OKRate: 9},
			{Name: "loginpage", OKRate: 8},
			{Name: "signup", OKRate: 7},
			{Name: "stats", OKRate: 10},
			{Name: "client_credentials", Skipped: "no client"},
		},
		SignaturesPerRefresh: 2,
		SignaturesPerCode:    2,
		Flood:                &FloodResult{ScenarioResult: ScenarioResult{Name: "flood", OK: 3}, PeakRSSMiB: 200, BudgetMiB: 278, Pass: true},
		LoginFlood: &FloodResult{ScenarioResult: ScenarioResult{Name: "loginflood", Concurrency: 200, OK: 3}, Failed503: 5, OtherFailures: 1,
			PeakRSSMiB: 290, BudgetMiB: 278},
	}
	l := Limits{SignPerSec: 1000, HashesPerSec: 10}
	got := map[string]Check{}
	for _, c := range checks(rep, l, 1000) {
		got[c.Target] = c
	}
	for target, want := range map[string]string{
		"refresh": "pass", "password": "pass", "signup": "FAIL", "discovery": "pass", "jwks": "FAIL",
		"userinfo": "pass", "profile": "FAIL", "stats": "info", "flood": "pass",
		"authorize": "info", "loginpage": "info", "loginflood": "FAIL",
	} {
		if got[target].Result != want {
			t.Errorf("%s: %s (%+v), want %s", target, got[target].Result, got[target], want)
		}
	}
	if c := got["refresh"]; c.Value != 800 || c.Ratio != 0.8 || !strings.Contains(c.Measured, "2 signatures") {
		t.Errorf("refresh: %+v; want 400 grants/s × 2 = 800 against 1000", c)
	}
	// authorize → code → token signs two tokens: its ceiling is half the
	// signing rate, so 300 codes/s are 0.6 of the limit.
	if c := got["authorize"]; c.Value != 600 || c.Ratio != 0.6 || !strings.Contains(c.Measured, "300.0 codes/s × 2 signatures") {
		t.Errorf("authorize: %+v; want 300 codes/s × 2 = 600 against 1000", c)
	}
	if c := got["loginpage"]; c.Ratio != 0.8 || c.Against != "argon2id hashes/s" {
		t.Errorf("loginpage: %+v; want 8 against 10 hashes/s", c)
	}
	if c := got["loginflood"]; c.Ratio != 290.0/278 || !strings.Contains(c.Measured, "3 303, 5×503, 1 other failures; peak RSS 290 MiB") {
		t.Errorf("loginflood: %+v", c)
	}
	if _, ok := got["client_credentials"]; ok {
		t.Error("a skipped scenario produced a check")
	}
	if c := got["stats"]; !strings.Contains(c.Measured, "~1016 users") || !strings.Contains(c.Measured, "100 ms of machine time per call") {
		t.Errorf("stats: %q", c.Measured)
	}
	// On a busy machine the CPU ratios decide.
	rep.OthersShare = 0.5
	rep.Scenario("jwks").CPURate, rep.Scenario("healthz").CPURate = 850, 1000
	rep.Scenario("password").CPURate = 5
	l.HashesPerSecCPU = 10
	got = map[string]Check{}
	for _, c := range checks(rep, l, 1000) {
		got[c.Target] = c
	}
	if got["jwks"].Result != "pass (cpu)" || got["password"].Result != "FAIL (cpu)" || got["discovery"].Result != "pass" {
		t.Errorf("noisy: jwks %q, password %q, discovery %q; want pass (cpu), FAIL (cpu), pass (no cpu figure)",
			got["jwks"].Result, got["password"].Result, got["discovery"].Result)
	}
	// On MySQL the ratios without the database's CPU are shown beside
	// (healthz, which asks nothing of it, counts as is); they decide nothing.
	rep.OthersShare = 0
	rep.Scenario("userinfo").CPURate, rep.Scenario("userinfo").CPURateWithoutDB = 250, 400
	rep.Scenario("refresh").CPURate, rep.Scenario("refresh").CPURateWithoutDB = 300, 380
	l.SignPerSecCPU = 1000
	got = map[string]Check{}
	for _, c := range checks(rep, l, 1000) {
		got[c.Target] = c
	}
	if c := got["userinfo"]; c.CPURatio != 0.25 || c.CPURatioWithoutDB != 0.4 || c.Result != "pass" {
		t.Errorf("userinfo: %+v; want cpu ratio 0.25, 0.4 without the database, judged on the wall-clock 0.3", c)
	}
	if c := got["refresh"]; c.CPURatioWithoutDB != 0.76 || got["jwks"].CPURatioWithoutDB != 0 {
		t.Errorf("refresh without the database %v (want 380 × 2 / 1000), jwks %v (want none)", c.CPURatioWithoutDB, got["jwks"].CPURatioWithoutDB)
	}
	missing := checks(&Report{}, l, 0)
	for _, c := range missing {
		if c.Result != "n/a" {
			t.Errorf("%s without a measurement: %s", c.Target, c.Result)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	st, err := parseProcStatus("Name:\tidp\nVmPeak:\t 2467188 kB\nVmHWM:\t  401000 kB\nVmRSS:\t  352692 kB\nRssAnon:\t    9160 kB\nRssFile:\t   45812 kB\nThreads:\t9\n")
	if err != nil || st.rssKiB != 352692 || st.hwmKiB != 401000 || st.anonKiB != 9160 {
		t.Errorf("parseProcStatus = %+v, %v", st, err)
	}
	if _, err := parseProcStatus("Name:\tidp\n"); err == nil {
		t.Error("no VmRSS accepted")
	}
	if _, err := parseProcStatus("VmRSS:\t12 MB\n"); err == nil {
		t.Error("a unit other than kB accepted")
	}
}

// TestIdleCheck: the idle target judges the larger of the two idle figures
// (after start-up, after the idle period) against 45 MB; the figure at the
// end of the load, with the hashing buffers still held, is not judged.
func TestIdleCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		m    MemoryFigures
		want string
	}{
		{"both under", MemoryFigures{StartMiB: 40, IdleMiB: 41, AfterLoadMiB: 190, IdleWait: 40}, "pass"},
		{"start over", MemoryFigures{StartMiB: 43.5, IdleMiB: 40, IdleWait: 40}, "FAIL"},
		{"after the idle period over", MemoryFigures{StartMiB: 40, IdleMiB: 120, IdleWait: 40}, "FAIL"},
		{"not measured after the load", MemoryFigures{StartMiB: 40}, "pass"},
	} {
		got := idleCheck(&c.m)
		if got.Result != c.want {
			t.Errorf("%s: %s (ratio %.2f of %.1f MiB), want %s", c.name, got.Result, got.Ratio, got.Limit, c.want)
		}
	}
	if idleTargetMiB < 42.9 || idleTargetMiB > 43 {
		t.Errorf("idle target %.2f MiB, want 45 MB = 42.9 MiB", idleTargetMiB)
	}
	var b strings.Builder
	writeEngineRun(&b, &EngineRun{Engine: "sqlite", Checks: []Check{idleCheck(&MemoryFigures{StartMiB: 40, IdleMiB: 41, AfterLoadMiB: 190, IdleWait: 40})}})
	for _, want := range []string{"idle memory", "≤ 1.0", "40.0 MiB after start-up", "190.0 at the end of the load", "41.0", "after 40 s idle"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestServerEnv(t *testing.T) {
	env := serverEnv([]string{"PATH=/bin", "IDP_DATABASE_URL=mysql://x/y", "IDP_TEST_MYSQL_DSN=mysql://x/", "IDP_KEY_SIZE=3072", "IDP_ISSUER=http://old"},
		map[string]string{"IDP_ISSUER": "http://127.0.0.1:1", "IDP_HTTP_ADDR": "127.0.0.1:1"})
	got := strings.Join(env, " ")
	for _, want := range []string{"PATH=/bin", "IDP_KEY_SIZE=3072", "IDP_ISSUER=http://127.0.0.1:1", "IDP_HTTP_ADDR=127.0.0.1:1"} {
		if !strings.Contains(got, want) {
			t.Errorf("env lacks %s: %s", want, got)
		}
	}
	for _, unwanted := range []string{"IDP_DATABASE_URL", "IDP_TEST_MYSQL_DSN", "http://old"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("env keeps %s: %s", unwanted, got)
		}
	}
}

func TestPerSecond(t *testing.T) {
	n := 0
	rate, _, err := perSecond(context.Background(), 1, 20*time.Millisecond, func() error { n++; time.Sleep(time.Millisecond); return nil })
	if err != nil || rate <= 0 || n == 0 {
		t.Errorf("perSecond = %v, %v after %d ops", rate, err, n)
	}
	boom := errors.New("boom")
	if _, _, err := perSecond(context.Background(), 2, time.Second, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("perSecond with a failing op: %v", err)
	}
	var s rateSum
	s.add(10, time.Second)
	s.add(40, 2*time.Second)
	if s.rate() != 30 {
		t.Errorf("time-weighted mean = %v, want 30", s.rate())
	}
}

func TestBenchFlags(t *testing.T) {
	err := cmdBench(context.Background(), []string{"-idp", "/nonexistent/idp", "-duration", "1s"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-idp") {
		t.Errorf("bench without an idp binary: %v", err)
	}
	err = cmdBench(context.Background(), []string{"-seed-users", "-1"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-seed-users") {
		t.Errorf("negative -seed-users: %v", err)
	}
}

func TestProcStat(t *testing.T) {
	d, err := parseProcStat("1903 (idp serve) S 1 1903 1 0 -1 4194560 12 0 0 0 2462 150 0 0 20 0 9 0 100 2519724 63231 18446744073709551615")
	if err != nil || d != 26120*time.Millisecond {
		t.Errorf("parseProcStat = %v, %v; want 26.12s", d, err)
	}
	if _, err := parseProcStat("1 (x) S 1"); err == nil {
		t.Error("short stat line accepted")
	}
	busy, err := parseMachineStat("cpu  100 5 50 1000 7 1 2 3 0 0\ncpu0 1 2 3 4\n")
	if err != nil || busy != 1610*time.Millisecond {
		t.Errorf("parseMachineStat = %v, %v; want 1.61s (all but idle and iowait)", busy, err)
	}
	// /proc counts in clock ticks: spend one first.
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		if t, _ := processCPU(os.Getpid()); t > 0 {
			break
		}
	}
	if s := sampleCPU(os.Getpid(), 0); !s.ok || s.self <= 0 || s.server <= 0 || s.busy <= 0 || s.db != 0 {
		t.Errorf("sampleCPU(self) = %+v", s)
	}
	// A second pid is the database's: counted in server and on its own.
	if s := sampleCPU(os.Getpid(), os.Getpid()); !s.ok || s.db <= 0 || s.server < 2*s.db {
		t.Errorf("sampleCPU(self, self as the database) = %+v", s)
	}
	var res ScenarioResult
	res.OK = 100
	res.withCPU(cpuUse{server: 300 * time.Millisecond, db: 100 * time.Millisecond, client: 200 * time.Millisecond, others: time.Second, wall: time.Second}, 2)
	if res.CPURate != 400 || res.OthersShare != 0.5 || res.DatabaseCPUSeconds != 0.1 || res.CPURateWithoutDB != 500 {
		t.Errorf("withCPU: rate %v, others %v, database %v, rate without it %v; want 100 ok / 0.5 CPU-s × 2 cores = 400, 0.5, 0.1 s and 100 / 0.4 × 2 = 500",
			res.CPURate, res.OthersShare, res.DatabaseCPUSeconds, res.CPURateWithoutDB)
	}
}
