package fake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// SendGridKey is the API key SendGrid expects.
const SendGridKey = "SG.test-key"

// Mail is a message SendGrid accepted.
type Mail struct{ From, To, Subject, Text, HTML string }

// SendGrid is an httptest server on loopback speaking SendGrid's v3 mail
// send API, for the real sendgrid-go client: it checks the method, path,
// API key and payload of every request (a wrong one fails the test), answers
// the n-th request (1-based) with the status that Respond set (202 by
// default), and keeps the messages it accepted.
type SendGrid struct {
	*httptest.Server

	mu       sync.Mutex
	status   func(n int) int
	requests int
	accepted []Mail
}

// NewSendGrid starts the server, closed when t ends.
func NewSendGrid(t testing.TB) *SendGrid {
	f := &SendGrid{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v3/mail/send" || r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+SendGridKey {
			t.Errorf("SendGrid request %s %s, Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Personalizations []struct{ To []struct{ Email string } }
			From             struct{ Email, Name string }
			Subject          string
			Content          []struct{ Type, Value string }
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil || len(p.Personalizations) != 1 || len(p.Personalizations[0].To) != 1 ||
			p.Personalizations[0].To[0].Email == "" || p.From.Email == "" || p.Subject == "" ||
			len(p.Content) == 0 || len(p.Content) > 2 || p.Content[0].Type != "text/plain" ||
			(len(p.Content) == 2 && p.Content[1].Type != "text/html") {
			t.Errorf("SendGrid payload: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests++
		code := http.StatusAccepted
		if f.status != nil {
			code = f.status(f.requests)
		}
		if code == http.StatusAccepted {
			m := Mail{From: p.From.Email, To: p.Personalizations[0].To[0].Email, Subject: p.Subject, Text: p.Content[0].Value}
			if len(p.Content) == 2 {
				m.HTML = p.Content[1].Value
			}
			f.accepted = append(f.accepted, m)
		}
		f.mu.Unlock()
		w.WriteHeader(code)
		if code >= 400 {
			io.WriteString(w, `{"errors":[{"message":"test failure","field":null}]}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// Respond makes the server answer the n-th request with status(n).
func (f *SendGrid) Respond(status func(n int) int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = status
}

// Requests is how many well-formed requests arrived.
func (f *SendGrid) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Mails are the messages accepted so far, oldest first.
func (f *SendGrid) Mails() []Mail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Mail(nil), f.accepted...)
}

// Delivered counts the accepted messages per recipient.
func (f *SendGrid) Delivered() map[string]int {
	d := map[string]int{}
	for _, m := range f.Mails() {
		d[m.To]++
	}
	return d
}
