package profile

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"idp/account"
	"idp/mail"
)

func (m *recordingMailer) since(n int) []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent[n:])
}

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var v *ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("err %v, want a ValidationError", err)
	}
	var out []string
	for _, fe := range v.Errors {
		out = append(out, fe.Field+":"+fe.Code)
	}
	return out
}

// TestRequestEmailChange: the fields are checked first, then the password
// through the lock-out; a good request mails a code to the new address and
// a notice without it to the old, and moves nothing until the code is
// used; past the hour's quota it mails nothing.
func TestRequestEmailChange(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)
	var events []string
	f.s.cfg.ObserveEvent = func(e string) { events = append(events, e) }
	u, err := f.s.CreateAccount(ctx, signupInput("ada"), nil)
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = "" // as a token's user comes: the row is read again
	const pw = "a sturdy passphrase"
	for _, tc := range []struct {
		name, email, pw string
		want            []string
	}{
		{"nothing", "", "", []string{"new_email:required", "password:required"}},
		{"not an address", "ada at example.com", pw, []string{"new_email:invalid"}},
		{"a bad domain", "ada@exa mple.com", pw, []string{"new_email:invalid"}},
		{"too long", strings.Repeat("a", 250) + "@example.com", pw, []string{"new_email:invalid"}},
		{"the present address", "ADA@example.com", pw, []string{"new_email:unchanged"}},
	} {
		err := f.s.RequestEmailChange(ctx, u, tc.email, tc.pw, "192.0.2.1")
		if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: fields %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := f.s.RequestEmailChange(ctx, u, "new@example.com", "wrong password", "192.0.2.1"); !errors.Is(err, account.ErrInvalidCredentials) {
		t.Fatalf("a wrong password: %v, want ErrInvalidCredentials", err)
	}
	if n := f.mailer.count(); n != 1 {
		t.Fatalf("%d mails after refused requests, want only the signup's", n)
	}

	before := f.mailer.count()
	if err := f.s.RequestEmailChange(ctx, u, "New@Example.com", pw, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	sent := f.mailer.since(before)
	if len(sent) != 2 || sent[0].To != "new@example.com" || sent[1].To != "ada@example.com" {
		t.Fatalf("mails %+v, want a code to the new address and a notice to the old", sent)
	}
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(sent[0].Text)
	if code == "" || strings.Contains(sent[1].Text, code) || strings.Contains(sent[1].HTML, code) {
		t.Fatalf("code %q; the notice must not carry it: %q", code, sent[1].Text)
	}
	if !strings.Contains(sent[1].Text, "reset your password") {
		t.Errorf("the notice does not say what to do: %q", sent[1].Text)
	}
	if got, _ := f.accounts.Get(ctx, u.ID); got.Email != "ada@example.com" {
		t.Fatalf("the address changed before the code was used: %s", got.Email)
	}
	changed, err := f.s.ConfirmEmail(ctx, u, code)
	if err != nil || !changed {
		t.Fatalf("confirm: %v %v", changed, err)
	}
	if got, _ := f.accounts.Get(ctx, u.ID); got.Email != "new@example.com" || !got.EmailVerified {
		t.Fatalf("after the code: %s verified %v", got.Email, got.EmailVerified)
	}
	if want := []string{"email_change_requested", "email_changed"}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}

	// The hour's quota: two more requests mail, the fourth does not.
	u, _ = f.accounts.Get(ctx, u.ID)
	for i := range 3 {
		before := f.mailer.count()
		if err := f.s.RequestEmailChange(ctx, u, "again@example.com", pw, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		want := 2
		if i == 2 {
			want = 0
		}
		if n := f.mailer.count() - before; n != want {
			t.Fatalf("request %d of the hour sent %d mails, want %d", i+2, n, want)
		}
	}
}

type passwordClient struct{ fosite.DefaultClient }

// TestChangePassword: the fields first, then the current password
// through the lock-out; a change sets the new password, ends the other
// sessions but the kept one, mails a notice, and refuses a client that
// may not receive password-grant tokens before changing anything.
func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)
	var events []string
	f.s.cfg.ObserveEvent = func(e string) { events = append(events, e) }
	u, err := f.s.CreateAccount(ctx, signupInput("ada"), nil)
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = "" // as a token's user comes: the row is read again
	const pw = "a sturdy passphrase"
	for _, tc := range []struct {
		name, current, new string
		want               []string
	}{
		{"nothing", "", "", []string{"current_password:required", "new_password:required"}},
		{"too short", pw, "short", []string{"new_password:too_short"}},
		{"too long", pw, strings.Repeat("x", PasswordMaxLength+1), []string{"new_password:too_long"}},
		{"common", pw, "Unbelievable", []string{"new_password:common"}},
		{"the email", pw, "ada@example.com", []string{"new_password:matches_login"}},
		{"the same", pw, pw, []string{"new_password:unchanged"}},
	} {
		_, err := f.s.ChangePassword(ctx, u, PasswordChange{Current: tc.current, New: tc.new, From: "192.0.2.1"})
		if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: fields %v, want %v", tc.name, got, tc.want)
		}
	}
	const next = "another sturdy passphrase"
	if _, err := f.s.ChangePassword(ctx, u, PasswordChange{Current: "wrong password", New: next, From: "192.0.2.1"}); !errors.Is(err, account.ErrInvalidCredentials) {
		t.Fatalf("a wrong current password: %v", err)
	}
	authCode := &passwordClient{fosite.DefaultClient{ID: "web", GrantTypes: []string{"authorization_code"}}}
	if _, err := f.s.ChangePassword(ctx, u, PasswordChange{Current: pw, New: next, Client: authCode}); !errors.Is(err, errUnauthorizedClient) {
		t.Fatalf("a client without the password grant: %v", err)
	}
	if _, err := f.accounts.Authenticate(ctx, "ada", pw, "192.0.2.9"); err != nil {
		t.Fatalf("the password changed for a refused client: %v", err)
	}
	if len(f.sessions.ended) != 0 || len(events) != 0 {
		t.Fatalf("refused changes ended sessions %v, events %v", f.sessions.ended, events)
	}

	before := f.mailer.count()
	tokens, err := f.s.ChangePassword(ctx, u, PasswordChange{Current: pw, New: next, From: "192.0.2.1", KeepSession: "browser-1"})
	if err != nil || tokens != nil {
		t.Fatalf("change without a client: %v %v", tokens, err)
	}
	if _, err := f.accounts.Authenticate(ctx, "ada", next, "192.0.2.9"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if _, err := f.accounts.Authenticate(ctx, "ada", pw, "192.0.2.9"); !errors.Is(err, account.ErrInvalidCredentials) {
		t.Fatalf("the old password: %v", err)
	}
	if !slices.Equal(f.sessions.ended, []int64{u.ID}) || !slices.Equal(f.sessions.kept, []string{"browser-1"}) {
		t.Errorf("sessions ended %v kept %v, want the user's but browser-1", f.sessions.ended, f.sessions.kept)
	}
	sent := f.mailer.since(before)
	if len(sent) != 1 || sent[0].To != "ada@example.com" || !strings.Contains(sent[0].Subject, "password was changed") {
		t.Errorf("mails %+v, want a notice to ada", sent)
	}
	if !slices.Equal(events, []string{"password_changed"}) {
		t.Errorf("events %v", events)
	}
}
