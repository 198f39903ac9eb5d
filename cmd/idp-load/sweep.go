package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sweepPass is the server's log line of a sweep pass that removed rows.
type sweepPass struct {
	Start, End time.Time
	Removed    int
}

// findSweep reads the first logged sweep pass (cmd/idp's "sweep" line:
// its time is the pass's end, took its duration) from the log at path.
func findSweep(path string) (sweepPass, bool) {
	f, err := os.Open(path)
	if err != nil {
		return sweepPass{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Took    string    `json:"took"`
			Removed int       `json:"removed"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "sweep" {
			continue
		}
		took, err := time.ParseDuration(l.Took)
		if err != nil {
			continue
		}
		return sweepPass{Start: l.Time.Add(-took), End: l.Time, Removed: l.Removed}, true
	}
	return sweepPass{}, false
}

// SweepResult is userinfo's p99 while the sweep ran a pass and without.
type SweepResult struct {
	Removed      int     `json:"removed"`
	PassSeconds  float64 `json:"pass_seconds"`
	DuringP99Ms  float64 `json:"during_p99_ms"`
	WithoutP99Ms float64 `json:"without_p99_ms"`
	During       int     `json:"during_requests"`
	Without      int     `json:"without_requests"`
}

// timedLatency is one answer: when it was sent and how long it took.
type timedLatency struct {
	at      time.Time
	latency time.Duration
}

// splitBySweep puts each request that overlapped the pass into during and
// the ones sent before it into without, and returns both p99s.
func splitBySweep(reqs []timedLatency, p sweepPass) (during, without []time.Duration) {
	for _, r := range reqs {
		switch end := r.at.Add(r.latency); {
		case end.After(p.Start) && r.at.Before(p.End):
			during = append(during, r.latency)
		case !end.After(p.Start):
			without = append(without, r.latency)
		}
	}
	slices.Sort(during)
	slices.Sort(without)
	return during, without
}

// measureSweep loads userinfo in one-second slices against a server whose
// sweep runs its first pass soon, until the pass is logged and a second
// has passed since, or timeout.
func measureSweep(ctx context.Context, cfg loadConfig, logPath string, timeout time.Duration) (*SweepResult, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.prepareUsers(ctx); err != nil {
		return nil, err
	}
	sc := r.scenario(ctx, "userinfo")
	var reqs []timedLatency
	deadline := time.Now().Add(timeout)
	var pass sweepPass
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.attack(ctx, sc, cfg.Concurrency, time.Second, newRecorder(), func(res *vegeta.Result) {
			if int(res.Code) == sc.expect {
				reqs = append(reqs, timedLatency{res.Timestamp, res.Latency})
			}
		})
		var ok bool
		if pass, ok = findSweep(logPath); ok && time.Since(pass.End) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no sweep pass logged within %v", timeout)
		}
	}
	during, without := splitBySweep(reqs, pass)
	res := &SweepResult{Removed: pass.Removed, PassSeconds: pass.End.Sub(pass.Start).Seconds(), During: len(during), Without: len(without)}
	if len(during) == 0 || len(without) == 0 {
		return res, fmt.Errorf("sweep pass of %v: %d requests during it, %d before", pass.End.Sub(pass.Start), len(during), len(without))
	}
	res.DuringP99Ms, res.WithoutP99Ms = ms(percentile(during, 99)), ms(percentile(without, 99))
	return res, nil
}

// sweepCheck judges p99(during the pass)/p99(without) ≤ 2.
func sweepCheck(s *SweepResult) Check {
	c := Check{Target: "sweep p99", Against: "userinfo p99 ms without a sweep", Want: 2, Limit: s.WithoutP99Ms, Value: s.DuringP99Ms,
		Measured: fmt.Sprintf("userinfo p99 %.1f ms during a %.1f s pass removing %d rows (%d requests), %.1f ms before it (%d)",
			s.DuringP99Ms, s.PassSeconds, s.Removed, s.During, s.WithoutP99Ms, s.Without)}
	if s.WithoutP99Ms > 0 {
		c.Ratio = s.DuringP99Ms / s.WithoutP99Ms
	}
	c.Result = map[bool]string{true: "pass", false: "FAIL"}[c.Ratio > 0 && c.Ratio <= 2]
	return c
}
