package profile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"idp/profile"
	"idp/storage"
)

// fakeStats streams ids (ascending) in batches as storage.Store.UserStats
// does, and counts them with their genders. The queries, their ordering and
// their snapshot are tested in package storage; here, what WriteStats makes
// of what it is given.
type fakeStats struct {
	ids     []int64
	genders map[int64]storage.Gender
	// failAt, when not zero, makes the failAt-th batch (1, 2, …) fail
	// with err before it reaches fn; 1 is a failure before anything is
	// streamed.
	failAt int
	err    error
	// before, when set, is called before each batch reaches fn, with the
	// ids streamed so far.
	before func(streamed []int64)
}

func (f *fakeStats) UserStats(_ context.Context, batch int, fn func(ids []int64) error) (storage.GenderCounts, error) {
	if batch <= 0 {
		return storage.GenderCounts{}, fmt.Errorf("fake: batch size %d", batch)
	}
	var c storage.GenderCounts
	for _, id := range f.ids {
		switch f.genders[id] {
		case storage.GenderFemale:
			c.Female++
		case storage.GenderMale:
			c.Male++
		default:
			c.Unspecified++
		}
	}
	for i, start := 1, 0; ; i, start = i+1, start+batch {
		if i == f.failAt {
			return storage.GenderCounts{}, f.err
		}
		if start >= len(f.ids) {
			break
		}
		ids := f.ids[start:min(start+batch, len(f.ids))]
		if f.before != nil {
			f.before(f.ids[:start])
		}
		if err := fn(slices.Clone(ids)); err != nil {
			return storage.GenderCounts{}, err
		}
	}
	return c, nil
}

// statsOf is a fake over ids with the genders cycling female, male,
// female, unspecified, male.
func statsOf(ids ...int64) *fakeStats {
	cycle := []storage.Gender{storage.GenderFemale, storage.GenderMale, storage.GenderFemale, storage.GenderUnspecified, storage.GenderMale}
	f := &fakeStats{genders: map[int64]storage.Gender{}}
	for i, id := range ids {
		f.genders[id] = cycle[i%len(cycle)]
	}
	f.ids = slices.Sorted(slices.Values(ids))
	return f
}

// statsDoc is the stats document, decoded.
type statsDoc struct {
	UserIDs          []int64 `json:"user_ids"`
	CountFemale      int64   `json:"count_female"`
	CountMale        int64   `json:"count_male"`
	CountUnspecified int64   `json:"count_unspecified"`
}

// reference is the document for f as encoding/json writes it, an
// implementation independent of WriteStats'.
func (f *fakeStats) reference(t *testing.T) string {
	t.Helper()
	doc := statsDoc{UserIDs: append([]int64{}, f.ids...)}
	for _, id := range f.ids {
		switch f.genders[id] {
		case storage.GenderFemale:
			doc.CountFemale++
		case storage.GenderMale:
			doc.CountMale++
		default:
			doc.CountUnspecified++
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestWriteStats(t *testing.T) {
	tests := []struct {
		name  string
		stats *fakeStats
		batch int
		// want is the exact document; empty means the one encoding/json
		// makes of the fake's rows.
		want string
	}{
		{name: "no users", stats: statsOf(), batch: 10,
			want: `{"user_ids":[],"count_female":0,"count_male":0,"count_unspecified":0}` + "\n"},
		{name: "the contract's example", batch: 10, stats: &fakeStats{ids: []int64{1, 2, 3, 4},
			genders: map[int64]storage.Gender{1: storage.GenderFemale, 2: storage.GenderMale, 3: storage.GenderFemale, 4: storage.GenderFemale}},
			want: `{"user_ids":[1,2,3,4],"count_female":3,"count_male":1,"count_unspecified":0}` + "\n"},
		{name: "ids beyond float64 precision", batch: 2, stats: &fakeStats{ids: []int64{2, 9007199254740993, 9223372036854775807},
			genders: map[int64]storage.Gender{2: storage.GenderMale, 9007199254740993: storage.GenderMale, 9223372036854775807: storage.GenderFemale}},
			want: `{"user_ids":[2,9007199254740993,9223372036854775807],"count_female":1,"count_male":2,"count_unspecified":0}` + "\n"},
		{name: "ten users in batches of three", stats: statsOf(10, 3, 7, 1, 9, 2, 8, 4, 6, 5), batch: 3},
		{name: "nine users in batches of three", stats: statsOf(90, 30, 70, 10, 20, 80, 40, 60, 50), batch: 3},
		{name: "one full batch", stats: statsOf(3, 1, 2), batch: 3},
		{name: "batches of one", stats: statsOf(5, 4, 1, 3, 2), batch: 1},
		{name: "sparse ids across batches", stats: statsOf(1000, 1, 999, 2, 500, 501, 77, 1_000_000, 3), batch: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := profile.WriteStats(context.Background(), tt.stats, &out, tt.batch); err != nil {
				t.Fatalf("WriteStats: %v", err)
			}
			want := tt.want
			if want == "" {
				want = tt.stats.reference(t)
			}
			if got := out.String(); got != want {
				t.Errorf("WriteStats wrote\n%s\nwant\n%s", got, want)
			}
			dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
			dec.DisallowUnknownFields()
			var doc statsDoc
			if err := dec.Decode(&doc); err != nil || doc.UserIDs == nil {
				t.Errorf("the document %q does not decode with exactly the four keys and a list: %v", out.String(), err)
			}
		})
	}
}

// TestWriteStatsStreams checks that every full batch reaches w before the
// next is read, so that the document is never held whole: the point of
// streaming, as memory must not grow with the number of users.
func TestWriteStatsStreams(t *testing.T) {
	stats := statsOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	var out bytes.Buffer
	batches := 0
	stats.before = func(streamed []int64) {
		batches++
		for _, id := range streamed {
			if !bytes.Contains(out.Bytes(), []byte(strconv.FormatInt(id, 10))) {
				t.Errorf("before batch %d, id %d, streamed already, has not reached w (%q)", batches, id, out.String())
			}
		}
	}
	if err := profile.WriteStats(context.Background(), stats, &out, 3); err != nil {
		t.Fatalf("WriteStats: %v", err)
	}
	if batches != 4 {
		t.Errorf("%d batches read, want 4", batches)
	}
}

// TestWriteStatsErrors checks that failures are returned, and that nothing
// reaches w when the failure comes before the first batch (so that the
// caller can still answer with an error status).
func TestWriteStatsErrors(t *testing.T) {
	boom := errors.New("boom")
	down := fmt.Errorf("%w: connection refused", storage.ErrRetryable)
	tests := []struct {
		name        string
		batch       int
		failAt      int // the batch storage fails at; 0 never
		failAfter   int // bytes w accepts before failing with boom; <0 never fails
		wantErr     error
		wantNothing bool // nothing may reach w
	}{
		{name: "storage fails before the first batch", batch: 3, failAt: 1, failAfter: -1, wantErr: down, wantNothing: true},
		{name: "batch size zero", batch: 0, failAfter: -1, wantNothing: true},
		{name: "storage fails after the first batch", batch: 3, failAt: 2, failAfter: -1, wantErr: down},
		{name: "writer fails at once", batch: 3, failAfter: 0, wantErr: boom},
		// The first batch, {"user_ids":[1,2,3, is 18 bytes.
		{name: "writer fails in the second batch", batch: 3, failAfter: 20, wantErr: boom},
		{name: "writer fails in the only write", batch: 1000, failAfter: 5, wantErr: boom},
		{name: "writer fails in the counts", batch: 1000, failAfter: 60, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stats := statsOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
			stats.failAt, stats.err = tt.failAt, down
			w := &statsFailWriter{failAfter: tt.failAfter, err: boom}
			err := profile.WriteStats(context.Background(), stats, w, tt.batch)
			if err == nil {
				t.Fatalf("WriteStats returned nil after writing %q", w.buf.String())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("WriteStats = %v, want an error wrapping %v", err, tt.wantErr)
			}
			if tt.wantNothing && w.writes > 0 {
				t.Errorf("WriteStats failed with %v after writing %q: the caller can no longer answer with an error status", err, w.buf.String())
			}
			if !tt.wantNothing && w.writes == 0 {
				t.Errorf("the failure %v came before any write: the test does not test a failure mid-stream", err)
			}
			if !tt.wantNothing && strings.HasSuffix(w.buf.String(), "}\n") {
				t.Errorf("WriteStats failed with %v but wrote a whole document %q", err, w.buf.String())
			}
		})
	}
}

// statsFailWriter accepts failAfter bytes and then fails with err; a
// negative failAfter never fails.
type statsFailWriter struct {
	buf       bytes.Buffer
	writes    int
	failAfter int
	err       error
}

func (w *statsFailWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.failAfter < 0 {
		return w.buf.Write(p)
	}
	room := w.failAfter - w.buf.Len()
	if len(p) <= room {
		return w.buf.Write(p)
	}
	w.buf.Write(p[:max(room, 0)])
	return max(room, 0), w.err
}
