package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// flood sends FloodConcurrency concurrent logins for FloodDuration while
// sampling the server's resident memory: password grants (flood) or
// login-page POSTs (loginflood) or signups with a 5 MiB picture
// (pictureflood). It passes when every failure is the server's overload
// answer (the hashing queue or the upload budget is full: a 503, at the
// token endpoint with the error temporarily_unavailable, on the login page
// its HTML page) and the peak resident set stays within the idle figure +
// hash concurrency × argon2 memory + 64 MiB (150 MiB in place of the idle
// figure and the 64 when the idle figure is not known).
func (r *runner) flood(ctx context.Context, name string) *FloodResult {
	hashing := float64(r.cfg.HashConcurrency) * float64(r.cfg.Argon2MemoryKiB) / 1024
	f := &FloodResult{BudgetMiB: hashing + 150}
	if r.cfg.IdleRSSMiB > 0 {
		f.BudgetMiB = r.cfg.IdleRSSMiB + hashing + 64
	}
	sc := r.scenario(ctx, name)
	if sc.skip != "" {
		f.ScenarioResult = ScenarioResult{Name: name, Concurrency: r.cfg.FloodConcurrency, Skipped: sc.skip}
		return f
	}
	overloaded := func(res *vegeta.Result) bool { return res.Code == http.StatusServiceUnavailable }
	if name == floodScenario {
		sc.keepBody = true
		overloaded = func(res *vegeta.Result) bool {
			return res.Code == http.StatusServiceUnavailable && oauthError(res.Body) == "temporarily_unavailable"
		}
	}
	if name == pictureFloodScenario {
		overloaded = func(res *vegeta.Result) bool { return res.Code == http.StatusServiceUnavailable && res.Error == "" }
	}
	var sampler *rssSampler
	if r.cfg.PID > 0 {
		var err error
		if sampler, err = startRSSSampler(r.cfg.PID, 10*time.Millisecond); err != nil {
			r.notes = append(r.notes, "flood: cannot read the server's memory: "+err.Error())
		}
	}
	rec := newRecorder()
	elapsed, _, _ := r.attack(ctx, sc, r.cfg.FloodConcurrency, r.cfg.FloodDuration, rec, func(res *vegeta.Result) {
		switch {
		case int(res.Code) == sc.expect && res.Error == "":
		case overloaded(res):
			f.Failed503++
		default:
			f.OtherFailures++
		}
	})
	f.ScenarioResult = rec.result(name, r.cfg.FloodConcurrency, elapsed)
	if sampler != nil {
		peak, start, source := sampler.finish()
		f.PeakRSSMiB, f.StartRSSMiB, f.PeakSource = float64(peak)/1024, float64(start)/1024, source
	}
	f.Pass = f.OtherFailures == 0 && f.OK > 0 && (f.PeakRSSMiB == 0 || f.PeakRSSMiB <= f.BudgetMiB)
	return f
}

// oauthError returns the "error" member of an RFC 6749 error answer.
func oauthError(body []byte) string {
	var doc struct {
		Error string `json:"error"`
	}
	json.Unmarshal(body, &doc)
	return doc.Error
}

// procStatus is what the flood reads of /proc/<pid>/status, in KiB.
type procStatus struct {
	rssKiB, hwmKiB int64
	anonKiB        int64 // RssAnon, 0 on kernels without it
}

// parseProcStatus reads VmRSS, VmHWM and RssAnon from the text of /proc/<pid>/status.
func parseProcStatus(text string) (procStatus, error) {
	var st procStatus
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &st.rssKiB
		case "VmHWM":
			dst = &st.hwmKiB
		case "RssAnon":
			dst = &st.anonKiB
		default:
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("%s: unexpected value %q", key, val)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return st, fmt.Errorf("%s: %w", key, err)
		}
		*dst = n
	}
	if st.rssKiB == 0 {
		return st, fmt.Errorf("no VmRSS line")
	}
	return st, nil
}

func readProcStatus(pid int) (procStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	return parseProcStatus(string(b))
}

// rssSampler follows a process's resident set. It resets the process's
// high-water mark when it starts (writing 5 to /proc/<pid>/clear_refs, which
// needs the same user or root), so that VmHWM afterwards is the exact peak
// since then; without that it keeps the highest VmRSS it sampled.
type rssSampler struct {
	pid      int
	hwmReset bool
	startKiB int64

	mu      sync.Mutex
	peakKiB int64
	stop    chan struct{}
	done    chan struct{}
}

func startRSSSampler(pid int, every time.Duration) (*rssSampler, error) {
	st, err := readProcStatus(pid)
	if err != nil {
		return nil, err
	}
	s := &rssSampler{pid: pid, startKiB: st.rssKiB, peakKiB: st.rssKiB, stop: make(chan struct{}), done: make(chan struct{})}
	s.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if st, err := readProcStatus(pid); err == nil {
					s.mu.Lock()
					s.peakKiB = max(s.peakKiB, st.rssKiB)
					s.mu.Unlock()
				}
			}
		}
	}()
	return s, nil
}

// finish stops sampling and returns the peak and starting resident set in
// KiB, and where the peak comes from.
func (s *rssSampler) finish() (peakKiB, startKiB int64, source string) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	peakKiB = s.peakKiB
	s.mu.Unlock()
	source = "highest VmRSS sampled every 10 ms"
	if st, err := readProcStatus(s.pid); err == nil {
		peakKiB = max(peakKiB, st.rssKiB)
		if s.hwmReset && st.hwmKiB > 0 {
			peakKiB = max(peakKiB, st.hwmKiB)
			source = "VmHWM, reset before the flood"
		}
	}
	return peakKiB, s.startKiB, source
}
