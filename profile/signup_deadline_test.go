package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"idp/account"
	"idp/database/databasetest"
	"idp/password"
	"idp/picture"
	"idp/storage"
)

// TestSignupDeadlineIsNotBusy: only the decoding queue's own wait running out
// is "Too many pictures" (503 busy); the request's deadline passing, whether
// while it waits for a decoding slot or at the database, is a 503 that says
// the service is unavailable.
func TestSignupDeadlineIsNotBusy(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	store := storage.New(db)
	accounts := account.New(store, testHasher(t, 2, 1, time.Second), account.Options{})
	s, err := New(Config{Issuer: "http://idp.test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Deps{
		Accounts: accounts, Users: store, Tokens: fakeTokens{},
		Decode: func(*picture.Upload) (picture.Image, error) { return picture.Image{}, picture.ErrNotImage },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	s.Mount(r)
	// Every decoding slot is taken for the whole test.
	for range cap(s.decoding) {
		s.decoding <- struct{}{}
	}
	pic := photoJPEG(t, 64, 48)

	tests := []struct {
		name       string
		decodeWait time.Duration
		deadline   time.Duration // of the request; 0: none
		kind       string        // the problem type's last segment
	}{
		{"the queue's wait runs out", 50 * time.Millisecond, 0, "busy"},
		{"the request's deadline passes in the queue", 10 * time.Second, 300 * time.Millisecond, "unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.decodeWait = tc.decodeWait
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			for _, f := range [][2]string{{"client_id", "mobile"}, {"username", "ada"}, {"email", "ada@example.com"},
				{"password", "a sturdy passphrase"}, {"first_name", "Ada"}, {"last_name", "L"}, {"gender", "female"}} {
				mw.WriteField(f[0], f[1])
			}
			fw, _ := mw.CreateFormFile("picture", "me.jpg")
			fw.Write(pic)
			mw.Close()
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/users", &body)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != http.StatusServiceUnavailable || p.Type != problemType+tc.kind || rec.Header().Get("Retry-After") == "" {
				t.Errorf("%d %+v (Retry-After %q), want 503 %s with Retry-After", rec.Code, p, rec.Header().Get("Retry-After"), tc.kind)
			}
			if mentions := strings.Contains(p.Detail, "pictures"); mentions != (tc.kind == "busy") {
				t.Errorf("detail %q: mentions pictures %v, want %v", p.Detail, mentions, tc.kind == "busy")
			}
		})
	}

	// Elsewhere: at the database, or in the hashing queue when the request's
	// deadline passes there (the hasher's busy error wraps it).
	for _, tc := range []struct {
		name string
		err  error
		kind string
	}{
		{"the database", fmt.Errorf("account: taken: %w", context.DeadlineExceeded), "unavailable"},
		{"the hashing queue, at the request's deadline", fmt.Errorf("%w: %w", password.ErrBusy, context.DeadlineExceeded), "unavailable"},
		{"the hashing queue's own wait", password.ErrBusy, "busy"},
	} {
		rec := httptest.NewRecorder()
		s.fail(rec, httptest.NewRequest(http.MethodPost, "/v1/users", nil), "signup", tc.err)
		var p Problem
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusServiceUnavailable || p.Type != problemType+tc.kind {
			t.Errorf("%s: %d %+v, want 503 %s", tc.name, rec.Code, p, tc.kind)
		}
	}
}
