package keys

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

func TestJWKSHandler(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		m := loadedManager(t, storage.New(db), testOptions(newClock()))
		// As mounted: the route has to take HEAD too.
		h := chi.NewRouter()
		m.Mount(h)
		body, etag := m.JWKS()
		// testOptions: min(1h, (2h - 1m)/2) = 59m30s.
		const cacheControl = "public, max-age=3570"

		tests := []struct {
			name        string
			method      string
			ifNoneMatch string
			wantStatus  int
			wantBody    bool
		}{
			{"GET", http.MethodGet, "", http.StatusOK, true},
			{"HEAD", http.MethodHead, "", http.StatusOK, false},
			{"matching ETag", http.MethodGet, etag, http.StatusNotModified, false},
			{"weak form of the ETag", http.MethodGet, "W/" + etag, http.StatusNotModified, false},
			{"ETag in a list", http.MethodGet, `"other", ` + etag, http.StatusNotModified, false},
			{"star", http.MethodGet, "*", http.StatusNotModified, false},
			{"other ETag", http.MethodGet, `"other"`, http.StatusOK, true},
			{"POST", http.MethodPost, "", http.StatusMethodNotAllowed, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := httptest.NewRequest(tt.method, "/.well-known/jwks.json", nil)
				if tt.ifNoneMatch != "" {
					req.Header.Set("If-None-Match", tt.ifNoneMatch)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				res := rec.Result()
				if res.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
				}
				if tt.wantStatus == http.StatusMethodNotAllowed {
					if res.Header.Get("Allow") == "" {
						t.Error("405 without Allow")
					}
					return
				}
				if got := res.Header.Get("ETag"); got != etag {
					t.Errorf("ETag %q, want %q", got, etag)
				}
				if got := res.Header.Get("Cache-Control"); got != cacheControl {
					t.Errorf("Cache-Control %q, want %q", got, cacheControl)
				}
				if tt.wantStatus == http.StatusOK {
					if got := res.Header.Get("Content-Type"); got != "application/json" {
						t.Errorf("Content-Type %q", got)
					}
				}
				if got := rec.Body.Bytes(); tt.wantBody != (len(got) > 0) || (tt.wantBody && !bytes.Equal(got, body)) {
					t.Errorf("body %q, want the JWKS: %v", got, tt.wantBody)
				}
			})
		}

		// A new key changes the ETag, so the old one no longer matches.
		if _, err := m.Rotate(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
		req.Header.Set("If-None-Match", etag)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("ETag") == etag {
			t.Errorf("after a new key: status %d, ETag %s (old %s)", rec.Code, rec.Header().Get("ETag"), etag)
		}
	})
}
