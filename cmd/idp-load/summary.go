package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ScenarioResult is what one scenario measured.
type ScenarioResult struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`  // from the first request sent to the last answer read
	Requests    int     `json:"requests"` // answered or failed
	OK          int     `json:"ok"`       // answered with the scenario's expected status
	Rate        float64 `json:"rate"`     // requests per second
	OKRate      float64 `json:"ok_rate"`  // successful requests per second: what the targets use
	P50Ms       float64 `json:"p50_ms"`   // latency percentiles over every request, in milliseconds
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// Errors counts the failed requests by HTTP status ("503"), or
	// "transport" for requests that got no answer.
	Errors map[string]int `json:"errors,omitempty"`
	// With the server's pid: the CPU time the server and the load
	// generator spent, the share of the machine other processes took, and
	// OK per CPU-second of server and load generator times the cores (the
	// rate on a machine nothing else uses, for CPU-bound work).
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	// DatabaseCPUSeconds is the part of ServerCPUSeconds the local
	// database server spent (MySQL only).
	DatabaseCPUSeconds float64 `json:"database_cpu_seconds,omitempty"`
	ClientCPUSeconds   float64 `json:"client_cpu_seconds,omitempty"`
	OthersShare        float64 `json:"others_cpu_share,omitempty"`
	CPURate            float64 `json:"ok_per_cpu_second_times_cores,omitempty"`
	// CPURateWithoutDB is CPURate with the database server's CPU left out:
	// the rate when the database runs on a machine of its own.
	CPURateWithoutDB float64 `json:"ok_per_cpu_second_times_cores_without_db,omitempty"`
	Skipped          string  `json:"skipped,omitempty"` // why the scenario did not run
	Note             string  `json:"note,omitempty"`
}

// FloodResult is a login flood check: many concurrent password grants (or
// login-page POSTs) while the server's resident memory is sampled.
type FloodResult struct {
	ScenarioResult
	// PeakRSSMiB is the server's peak resident set during the flood:
	// VmHWM after resetting it before the flood, or else the highest VmRSS
	// sampled. Zero when no -pid was given.
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	PeakSource  string  `json:"peak_source,omitempty"` // "VmHWM" or "VmRSS samples"
	StartRSSMiB float64 `json:"start_rss_mib,omitempty"`
	// BudgetMiB is hash concurrency × argon2 memory + 150 MiB.
	BudgetMiB float64 `json:"budget_mib"`
	// Failed503 counts the overload answers: 503s, at the token endpoint
	// those whose error is temporarily_unavailable;
	// OtherFailures every other failure (another status, another error,
	// no answer).
	Failed503     int  `json:"failed_503"`
	OtherFailures int  `json:"other_failures"`
	Pass          bool `json:"pass"`
}

// Report is the outcome of one load run against one server.
type Report struct {
	URL         string           `json:"url"`
	Started     time.Time        `json:"started"`
	Duration    float64          `json:"duration_seconds"` // per scenario
	Concurrency int              `json:"concurrency"`
	Rounds      int              `json:"rounds"`
	Users       int              `json:"users"` // signed up to log in with
	Scenarios   []ScenarioResult `json:"scenarios"`
	Flood       *FloodResult     `json:"flood,omitempty"`
	LoginFlood  *FloodResult     `json:"login_flood,omitempty"` // the same with login-page POSTs
	// PictureFlood is the same with signups carrying a 5 MiB picture.
	PictureFlood *FloodResult `json:"picture_flood,omitempty"`
	// SignaturesPerRefresh is how many RS256 signatures one refresh grant
	// answer carries: the access token, plus the ID token when openid was
	// granted. Zero when the refresh scenario did not run.
	SignaturesPerRefresh int `json:"signatures_per_refresh,omitempty"`
	// SignaturesPerCode is the same for a code redemption (authorize).
	SignaturesPerCode int      `json:"signatures_per_code,omitempty"`
	Notes             []string `json:"notes,omitempty"`
	// OthersShare is the share of the machine's CPU that other processes
	// used while the scenarios ran (with -pid only).
	OthersShare float64 `json:"others_cpu_share,omitempty"`
}

// Scenario returns the result named name, or nil.
func (r *Report) Scenario(name string) *ScenarioResult {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// recorder accumulates the outcome of one scenario's requests. It is used
// from one goroutine.
type recorder struct {
	latencies []time.Duration
	ok        int
	errors    map[string]int
}

func newRecorder() *recorder { return &recorder{errors: map[string]int{}} }

// add records one request: status 0 means no answer.
func (r *recorder) add(status int, latency time.Duration, ok bool) {
	r.latencies = append(r.latencies, latency)
	switch {
	case ok:
		r.ok++
	case status == 0:
		r.errors["transport"]++
	default:
		r.errors[strconv.Itoa(status)]++
	}
}

// fail records a failed operation under key (a step and its status or
// error, for the scenarios of more than one request).
func (r *recorder) fail(key string, latency time.Duration) {
	r.latencies = append(r.latencies, latency)
	r.errors[key]++
}

// withCPU adds what the requests cost in CPU time to res.
func (res *ScenarioResult) withCPU(u cpuUse, cores int) {
	res.ServerCPUSeconds, res.ClientCPUSeconds = u.server.Seconds(), u.client.Seconds()
	res.DatabaseCPUSeconds = u.db.Seconds()
	if u.wall > 0 {
		res.OthersShare = u.others.Seconds() / (u.wall.Seconds() * float64(cores))
	}
	if ours := u.server + u.client; ours > 0 {
		res.CPURate = float64(res.OK) / ours.Seconds() * float64(cores)
		if rest := ours - u.db; u.db > 0 && rest > 0 {
			res.CPURateWithoutDB = float64(res.OK) / rest.Seconds() * float64(cores)
		}
	}
}

// result summarises the recorded requests over elapsed.
func (r *recorder) result(name string, concurrency int, elapsed time.Duration) ScenarioResult {
	res := ScenarioResult{Name: name, Concurrency: concurrency, Seconds: elapsed.Seconds(), Requests: len(r.latencies), OK: r.ok}
	if len(r.errors) > 0 {
		res.Errors = maps.Clone(r.errors)
	}
	if elapsed > 0 {
		res.Rate = float64(res.Requests) / elapsed.Seconds()
		res.OKRate = float64(res.OK) / elapsed.Seconds()
	}
	if len(r.latencies) > 0 {
		slices.Sort(r.latencies)
		res.P50Ms = ms(percentile(r.latencies, 50))
		res.P90Ms = ms(percentile(r.latencies, 90))
		res.P99Ms = ms(percentile(r.latencies, 99))
		res.MaxMs = ms(r.latencies[len(r.latencies)-1])
	}
	return res
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample that at least p% of the samples
// do not exceed. sorted must be ascending and not empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9)) // the epsilon keeps exact ranks exact
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// formatErrors writes error counts as "503×12 transport×1", largest first.
func formatErrors(errs map[string]int) string {
	if len(errs) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(errs))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(errs[b], errs[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, errs[k])
	}
	return strings.Join(parts, " ")
}

// writeTable prints the scenarios of r as an aligned table.
func writeTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconc\trequests\treq/s\tok/s\tp50 ms\tp90 ms\tp99 ms\tserver µs/req\tof it db\tload µs/req\terrors\t")
	row := func(s *ScenarioResult) {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\tskipped: %s\t\n", s.Name, s.Concurrency, s.Skipped)
			return
		}
		// CPU time per request, server and load generator, when known.
		// The database's part is shown on MySQL, where it is a process
		// of its own.
		srv, db, load := "-", "-", "-"
		if s.Requests > 0 && s.ServerCPUSeconds+s.ClientCPUSeconds > 0 {
			srv = fmt.Sprintf("%.0f", s.ServerCPUSeconds*1e6/float64(s.Requests))
			load = fmt.Sprintf("%.0f", s.ClientCPUSeconds*1e6/float64(s.Requests))
		}
		if s.Requests > 0 && s.DatabaseCPUSeconds > 0 {
			db = fmt.Sprintf("%.0f", s.DatabaseCPUSeconds*1e6/float64(s.Requests))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n",
			s.Name, s.Concurrency, s.Requests, s.Rate, s.OKRate, s.P50Ms, s.P90Ms, s.P99Ms, srv, db, load, formatErrors(s.Errors))
	}
	for i := range r.Scenarios {
		row(&r.Scenarios[i])
	}
	floods := []*FloodResult{r.Flood, r.LoginFlood, r.PictureFlood}
	for _, f := range floods {
		if f != nil {
			row(&f.ScenarioResult)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range floods {
		if f == nil || f.Skipped != "" {
			continue
		}
		verdict := "FAIL"
		if f.Pass {
			verdict = "pass"
		}
		rss := "not measured (no -pid)"
		if f.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("peak RSS %.0f MiB (%s; %.0f MiB before) vs budget %.0f MiB", f.PeakRSSMiB, f.PeakSource, f.StartRSSMiB, f.BudgetMiB)
		}
		overload := "503 temporarily_unavailable"
		switch f.Name {
		case loginFloodScenario:
			overload = "503 (the login page's busy answer)"
		case pictureFloodScenario:
			overload = "503 busy"
		}
		fmt.Fprintf(w, "%s: %s; %d failed with %s, %d failed otherwise: %s\n",
			f.Name, rss, f.Failed503, overload, f.OtherFailures, verdict)
	}
	if r.SignaturesPerCode > 0 {
		fmt.Fprintf(w, "authorize: %d RS256 signatures per code redemption (access token%s), so its ceiling is RS256 signatures/s ÷ %d\n",
			r.SignaturesPerCode, map[bool]string{true: " + ID token", false: ""}[r.SignaturesPerCode > 1], r.SignaturesPerCode)
	}
	if r.SignaturesPerRefresh > 0 {
		fmt.Fprintf(w, "refresh: %d RS256 signatures per grant (access token%s)\n", r.SignaturesPerRefresh,
			map[bool]string{true: " + ID token", false: ""}[r.SignaturesPerRefresh > 1])
	}
	for _, s := range r.Scenarios {
		if s.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Name, s.Note)
		}
	}
	if r.OthersShare > 0 {
		fmt.Fprintf(w, "other processes used %.0f%% of the machine's CPU while the scenarios ran\n", 100*r.OthersShare)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// writeJSON writes v as indented JSON to path.
func writeJSON(path string, v any, create func(string) (io.WriteCloser, error)) error {
	f, err := create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
