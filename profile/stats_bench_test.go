package profile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/profile"
	"idp/storage"
)

// BenchmarkStats1M times WriteStats, the document of GET /v1/users/stats
// from storage's stream of ids to the bytes written, over a million users
// on SQLite and, when IDP_TEST_MYSQL_DSN or IDP_TEST_POSTGRES_DSN is set,
// MySQL or PostgreSQL, and reports how far the heap grew during
// a call: the point of streaming is that this does not depend on the number
// of users. The targets are under 2 s per call and under 32 MiB of heap.
//
// The seeding takes a while, so it happens here, in the benchmark's body,
// which `go test` runs only when -bench selects it; a sub-benchmark whose
// body uses b.Loop runs once, so each engine is seeded once.
func BenchmarkStats1M(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds a million users")
	}
	const users = 1_000_000
	for _, e := range databasetest.Engines(b) {
		b.Run(e.Name, func(b *testing.B) {
			ctx := context.Background()
			db := databasetest.Open(b, e.NewURL(b))
			start := time.Now()
			statsSeed(b, ctx, db, users)
			b.Logf("seeded %d users in %v", users, time.Since(start).Round(time.Millisecond))
			store := storage.New(db)
			ids := statsCheckBench(b, ctx, store, users)

			var peak uint64
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				b.StartTimer()
				grew, err := statsHeapGrowth(func() error {
					return profile.WriteStats(ctx, store, io.Discard, 10_000)
				})
				if err != nil {
					b.Fatalf("WriteStats: %v", err)
				}
				peak = max(peak, grew)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(ids), "ids")
		})
	}
}

// statsSeed inserts n users with ids 1..n as fast as both engines allow:
// multi-row INSERTs of a thousand rows, a hundred of them per transaction,
// through one prepared statement.
func statsSeed(b *testing.B, ctx context.Context, db *database.DB, n int) {
	b.Helper()
	const (
		perInsert = 1000
		perTx     = 100 * perInsert
	)
	query := "INSERT INTO users (id, username, email, password_hash, first_name, last_name, gender, created_at, updated_at, password_changed_at) VALUES " +
		strings.Repeat("(?, ?, ?, 'x', 'First', 'Last', ?, ?, ?, ?),", perInsert-1) +
		"(?, ?, ?, 'x', 'First', 'Last', ?, ?, ?, ?)"
	genders := []string{"female", "male", "female", "unspecified", "male"}
	now := time.Now().UTC()
	args := make([]any, 0, 7*perInsert)
	for first := 1; first <= n; first += perTx {
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			b.Fatalf("seed: begin: %v", err)
		}
		stmt, err := tx.PrepareContext(ctx, query)
		if err != nil {
			b.Fatalf("seed: prepare: %v", err)
		}
		for id := first; id < first+perTx && id <= n; id += perInsert {
			args = args[:0]
			for i := id; i < id+perInsert; i++ {
				name := "user" + strconv.Itoa(i)
				args = append(args, i, name, name+"@example.com", genders[i%len(genders)], now, now, now)
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				b.Fatalf("seed: insert: %v", err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatalf("seed: commit: %v", err)
		}
	}
}

// statsCheckBench makes sure the benchmark measures a correct document over
// all n users, not a fast wrong one, and returns the number of ids listed.
func statsCheckBench(b *testing.B, ctx context.Context, store *storage.Store, n int) int {
	b.Helper()
	var out bytes.Buffer
	if err := profile.WriteStats(ctx, store, &out, 10_000); err != nil {
		b.Fatalf("WriteStats: %v", err)
	}
	var doc statsDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		b.Fatalf("decode: %v", err)
	}
	if len(doc.UserIDs) != n || !slices.IsSorted(doc.UserIDs) || doc.UserIDs[0] != 1 || doc.UserIDs[n-1] != int64(n) {
		b.Fatalf("%d ids from %d to %d, want 1 to %d ascending", len(doc.UserIDs), doc.UserIDs[0], doc.UserIDs[len(doc.UserIDs)-1], n)
	}
	if sum := doc.CountFemale + doc.CountMale + doc.CountUnspecified; sum != int64(n) {
		b.Fatalf("counts add up to %d, want %d", sum, n)
	}
	return len(doc.UserIDs)
}

// statsHeapGrowth runs fn and returns by how much the bytes in live and
// not-yet-swept heap objects peaked above their level when it started,
// sampled every millisecond. Samples can miss a spike shorter than that, but
// a buffer that grows with the number of users stays up for the whole call.
func statsHeapGrowth(fn func() error) (uint64, error) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	before := read()
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		top := before
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				top = max(top, read())
			case <-stop:
				peak <- max(top, read())
				return
			}
		}
	}()
	err := fn()
	close(stop)
	return <-peak - before, err
}
