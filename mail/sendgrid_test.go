package mail

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// v3Payload is the part of SendGrid's v3 mail send body the tests check.
type v3Payload struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		} `json:"to"`
	} `json:"personalizations"`
	From struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"from"`
	Subject string `json:"subject"`
	Content []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"content"`
}

func TestSendGridPayload(t *testing.T) {
	tests := []struct {
		name        string
		m           Message
		wantContent [][2]string
	}{
		{
			name:        "text and html",
			m:           Message{To: "alice@example.com", Subject: "Your code", Text: "Code: 12345678", HTML: "<p>Code: <b>12345678</b></p>"},
			wantContent: [][2]string{{"text/plain", "Code: 12345678"}, {"text/html", "<p>Code: <b>12345678</b></p>"}},
		},
		{
			name:        "text only",
			m:           Message{To: "bob@example.com", Subject: "Password changed", Text: "It was changed."},
			wantContent: [][2]string{{"text/plain", "It was changed."}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got v3Payload
			var calls int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
					t.Errorf("request %s %s, want POST /v3/mail/send", r.Method, r.URL.Path)
				}
				if a := r.Header.Get("Authorization"); a != "Bearer SG.test-key" {
					t.Errorf("Authorization = %q, want Bearer SG.test-key", a)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				body, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(body, &got); err != nil {
					t.Errorf("body is not JSON: %v: %s", err, body)
				}
				w.WriteHeader(http.StatusAccepted)
			}))
			defer srv.Close()

			sg := NewSendGrid("SG.test-key", Address{Name: "Example IdP", Email: "idp@example.com"}, WithSendGridHost(srv.URL))
			if err := sg.Send(context.Background(), tt.m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if calls != 1 {
				t.Fatalf("server got %d requests, want 1", calls)
			}
			if len(got.Personalizations) != 1 || len(got.Personalizations[0].To) != 1 {
				t.Fatalf("personalizations = %+v, want one with one recipient", got.Personalizations)
			}
			if to := got.Personalizations[0].To[0].Email; to != tt.m.To {
				t.Errorf("to = %q, want %q", to, tt.m.To)
			}
			if got.From.Email != "idp@example.com" || got.From.Name != "Example IdP" {
				t.Errorf("from = %+v", got.From)
			}
			if got.Subject != tt.m.Subject {
				t.Errorf("subject = %q, want %q", got.Subject, tt.m.Subject)
			}
			if len(got.Content) != len(tt.wantContent) {
				t.Fatalf("content = %+v, want %v", got.Content, tt.wantContent)
			}
			for i, c := range got.Content {
				if c.Type != tt.wantContent[i][0] || c.Value != tt.wantContent[i][1] {
					t.Errorf("content[%d] = %s %q, want %s %q", i, c.Type, c.Value, tt.wantContent[i][0], tt.wantContent[i][1])
				}
			}
		})
	}
}

func TestSendGridStatus(t *testing.T) {
	tests := []struct {
		status        int
		wantErr       bool
		wantPermanent bool
	}{
		{http.StatusAccepted, false, false},
		{http.StatusOK, false, false},
		{http.StatusInternalServerError, true, false},
		{http.StatusBadGateway, true, false},
		{http.StatusServiceUnavailable, true, false},
		{http.StatusTooManyRequests, true, false},
		{http.StatusRequestTimeout, true, false},
		{http.StatusBadRequest, true, true},
		{http.StatusUnauthorized, true, true},
		{http.StatusForbidden, true, true},
		{http.StatusRequestEntityTooLarge, true, true},
		{http.StatusNotFound, true, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				if tt.status >= 400 {
					io.WriteString(w, `{"errors":[{"message":"something is wrong","field":"from","help":null}]}`)
				}
			}))
			defer srv.Close()
			sg := NewSendGrid("k", Address{Email: "idp@example.com"}, WithSendGridHost(srv.URL))
			err := sg.Send(context.Background(), Message{To: "a@example.com", Subject: "s", Text: "t"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Send = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, tt.wantPermanent)
			}
			if err != nil {
				se, ok := errors.AsType[*StatusError](err)
				if !ok || se.StatusCode != tt.status {
					t.Fatalf("error %v is not a *StatusError with status %d", err, tt.status)
				}
				if se.Detail != "from: something is wrong" {
					t.Errorf("Detail = %q", se.Detail)
				}
			}
		})
	}
}

func TestSendGridNetworkErrorIsTemporary(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	sg := NewSendGrid("k", Address{Email: "idp@example.com"}, WithSendGridHost(url))
	err := sg.Send(context.Background(), Message{To: "a@example.com", Subject: "s", Text: "t"})
	if err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
	if errors.Is(err, ErrPermanent) {
		t.Errorf("network error %v is permanent, want temporary", err)
	}
}

func TestSendGridTimeoutIsTemporary(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	sg := NewSendGrid("k", Address{Email: "idp@example.com"}, WithSendGridHost(srv.URL), WithTimeout(50*time.Millisecond))
	err := sg.Send(context.Background(), Message{To: "a@example.com", Subject: "s", Text: "t"})
	if err == nil {
		t.Fatal("Send to a server that never answers succeeded")
	}
	if errors.Is(err, ErrPermanent) {
		t.Errorf("timeout %v is permanent, want temporary", err)
	}
}

func TestSendGridErrorsNeverCarryTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `not json`)
	}))
	defer srv.Close()
	sg := NewSendGrid("SG.secret-key", Address{Email: "idp@example.com"}, WithSendGridHost(srv.URL))
	m := Message{To: "a@example.com", Subject: "subject-7788", Text: "code 99887766", HTML: "<p>99887766</p>"}
	err := sg.Send(context.Background(), m)
	if err == nil {
		t.Fatal("Send succeeded on 400")
	}
	for _, secret := range []string{"99887766", "subject-7788", "SG.secret-key"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 5, "abcde"},
		{"aé", 2, "a"}, // é is two bytes: not split
		{"日本語", 4, "日"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
