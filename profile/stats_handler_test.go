package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"idp/storage"
)

// streamStats streams n ids, 1 to n, and fails with err (when not nil)
// instead of streaming the batch after the first.
type streamStats struct {
	n   int
	err error
}

func (f streamStats) UserStats(_ context.Context, batch int, fn func([]int64) error) (storage.GenderCounts, error) {
	ids := make([]int64, 0, batch)
	for id := int64(1); id <= int64(f.n); id++ {
		ids = append(ids, id)
		if len(ids) == batch || id == int64(f.n) {
			if err := fn(ids); err != nil {
				return storage.GenderCounts{}, err
			}
			if f.err != nil {
				return storage.GenderCounts{}, f.err
			}
			ids = ids[:0]
		}
	}
	return storage.GenderCounts{Unspecified: int64(f.n)}, nil
}

// failingStats fails before streaming anything.
type failingStats struct{ err error }

func (f failingStats) UserStats(context.Context, int, func([]int64) error) (storage.GenderCounts, error) {
	return storage.GenderCounts{}, f.err
}

func statsServer(t *testing.T, stats StatsReader) *Server {
	t.Helper()
	s, err := New(Config{Issuer: "http://idp.test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Deps{Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatsHandler: the document with its headers; a failure before the
// first byte is a 503 problem; a failure after it cuts the connection, so
// that the client cannot take the prefix for the answer.
func TestStatsHandler(t *testing.T) {
	t.Run("the document", func(t *testing.T) {
		rec := httptest.NewRecorder()
		statsServer(t, streamStats{n: 3}).handleStats(rec, httptest.NewRequest(http.MethodGet, "/v1/users/stats", nil))
		want := `{"user_ids":[1,2,3],"count_female":0,"count_male":0,"count_unspecified":3}` + "\n"
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("stats: %d %q, want 200 %q", rec.Code, rec.Body.String(), want)
		}
		if ct, cc := rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
			t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
		}
	})
	t.Run("failure before the first byte", func(t *testing.T) {
		rec := httptest.NewRecorder()
		statsServer(t, failingStats{fmt.Errorf("%w: down", storage.ErrRetryable)}).handleStats(rec, httptest.NewRequest(http.MethodGet, "/v1/users/stats", nil))
		var p struct {
			Status int `json:"status"`
		}
		if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != 503 {
			t.Errorf("stats: %d %s, want a 503 problem", rec.Code, rec.Body)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Error("the 503 has no Retry-After")
		}
	})
	t.Run("failure mid-stream", func(t *testing.T) {
		// Two full batches: the first is flushed, with the status, before
		// the failure.
		s := statsServer(t, streamStats{n: 2 * statsBatch, err: errors.New("connection lost")})
		srv := httptest.NewServer(http.HandlerFunc(s.handleStats))
		defer srv.Close()
		res, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200 sent before the failure", res.StatusCode)
		}
		body, err := io.ReadAll(res.Body)
		if err == nil {
			t.Errorf("the body (%d bytes) was read to its end without an error: a truncated document looks complete", len(body))
		}
		if json.Valid(body) {
			t.Errorf("the truncated body is valid JSON")
		}
	})
}
