package profile

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHoldBody: bodies with pictures take their length from the upload
// budget until released; one that finds it taken waits, then is refused;
// small bodies take nothing; a body of unknown length takes the limit.
func TestHoldBody(t *testing.T) {
	const mib = 1 << 20
	s, err := New(Config{Issuer: "http://idp.test", UploadMemory: 6 * mib}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s.decodeWait = 100 * time.Millisecond
	body := func(n int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/users", strings.NewReader(""))
		r.ContentLength = n
		return r
	}
	limit := s.MaxSignupBytes()

	first, ok := s.HoldBody(body(5*mib), limit)
	if !ok {
		t.Fatal("the first 5 MiB body was refused with the budget free")
	}
	start := time.Now()
	if _, ok := s.HoldBody(body(5*mib), limit); ok {
		t.Fatal("a second 5 MiB body was admitted into a 6 MiB budget holding 5")
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("the refused body gave up after %v, want it to wait 100ms first", took)
	}
	if _, ok := s.HoldBody(body(-1), limit); ok {
		t.Error("a body of unknown length was admitted with less than the limit free")
	}
	small, ok := s.HoldBody(body(smallBody), limit)
	if !ok {
		t.Error("a small body was refused: it should take nothing from the budget")
	}
	small()

	// A signup that finds the budget taken is answered 503 before its
	// body is read.
	rec := httptest.NewRecorder()
	s.handleSignup(rec, body(5*mib))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("signup with the upload budget taken: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}

	first()
	again, ok := s.HoldBody(body(5*mib), limit)
	if !ok {
		t.Fatal("a 5 MiB body was refused after the first was released")
	}
	again()
}
