package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFindSweepAndSplit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.log")
	log := `{"time":"2026-12-02T10:00:00Z","level":"INFO","msg":"listening"}
not json
{"time":"2026-12-02T10:00:22Z","level":"INFO","msg":"sweep","expired_tokens":90,"removed":100,"took":"2s"}
{"time":"2026-12-02T10:00:42Z","level":"INFO","msg":"sweep","removed":1,"took":"1ms"}
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	p, ok := findSweep(path)
	t0 := time.Date(2026, 12, 2, 10, 0, 20, 0, time.UTC)
	if !ok || !p.Start.Equal(t0) || !p.End.Equal(t0.Add(2*time.Second)) || p.Removed != 100 {
		t.Fatalf("findSweep = %+v, %v; want the first pass, 10:00:20 to 10:00:22, 100 rows", p, ok)
	}
	ms := time.Millisecond
	reqs := []timedLatency{
		{t0.Add(-time.Second), 5 * ms},      // before
		{t0.Add(-2 * ms), 5 * ms},           // ends inside the pass
		{t0.Add(time.Second), 50 * ms},      // inside
		{t0.Add(3 * time.Second), 1 * ms},   // after: neither
		{t0.Add(-10 * time.Second), 7 * ms}, // before
	}
	during, without := splitBySweep(reqs, p)
	if len(during) != 2 || len(without) != 2 || during[1] != 50*ms || without[1] != 7*ms {
		t.Errorf("during %v, without %v", during, without)
	}
	if c := sweepCheck(&SweepResult{DuringP99Ms: 30, WithoutP99Ms: 10}); c.Result != "FAIL" || c.Ratio != 3 {
		t.Errorf("3× p99: %+v", c)
	}
	if c := sweepCheck(&SweepResult{DuringP99Ms: 15, WithoutP99Ms: 10}); c.Result != "pass" {
		t.Errorf("1.5× p99: %+v", c)
	}
	if _, ok := findSweep(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("a missing log has a sweep")
	}
}
