package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"idp/account"
	"idp/mail"
	"idp/ratelimit"
	"idp/storage"
)

// readJSONObject reads a bounded application/json object of string
// fields. It answers the request itself and reports false when the body is
// not one.
func readJSONObject(w http.ResponseWriter, r *http.Request, fields ...string) (map[string]string, bool) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send application/json."))
		return nil, false
	}
	raw, ok := readObject(w, r.Body)
	if !ok {
		return nil, false
	}
	out, errs := stringFields(raw, fields...)
	if len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return nil, false
	}
	return out, true
}

// readObject reads a JSON object of at most 64 KiB. It answers the request
// itself (413, 400) and reports false when the body is not one.
func readObject(w http.ResponseWriter, body io.Reader) (map[string]json.RawMessage, bool) {
	b, err := io.ReadAll(io.LimitReader(body, maxJSONBytes+1))
	if err != nil {
		writeProblem(w, badBody(err))
		return nil, false
	}
	if len(b) > maxJSONBytes {
		writeProblem(w, problem(http.StatusRequestEntityTooLarge, "too-large", "Body too large", "A JSON body is at most 64 KiB."))
		return nil, false
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() {
		writeProblem(w, problem(http.StatusBadRequest, "malformed", "Malformed body", "The body is not a JSON object."))
		return nil, false
	}
	return raw, true
}

// stringFields picks the named fields of a JSON object; absent and null
// fields are left out, and a field that is not a string is a FieldError.
func stringFields(raw map[string]json.RawMessage, names ...string) (map[string]string, []FieldError) {
	out := map[string]string{}
	var errs []FieldError
	for _, name := range names {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			continue
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			errs = append(errs, FieldError{Field: name, Code: "invalid", Message: "Must be a string."})
			continue
		}
		out[name] = str
	}
	return out, errs
}

// handleForgot sends a reset code to the account's address. It answers 202
// whether or not the login exists, after the same minimum time either way,
// and silently drops mails past the quotas (see Forgot).
func (s *Server) handleForgot(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, ok := readJSONObject(w, r, "login")
	if !ok {
		return
	}
	if in["login"] == "" {
		writeProblem(w, validationProblem([]FieldError{{Field: "login", Code: "required", Message: "A username or email address is required."}}))
		return
	}
	if err := s.Forgot(ctx, in["login"], ratelimit.ClientAddr(ctx)); err != nil {
		s.fail(w, r, "forgot", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// Forgot mails the account that login names a reset code, when the quotas
// allow (see forgot); from is the requesting client's address. It takes at
// least ForgotMinDuration whether or not the account exists, so that
// neither its answer nor its time tells; a nil error says nothing about
// whether a mail was sent. It is the one implementation behind
// POST /v1/password/forgot and the "Forgot password?" page.
func (s *Server) Forgot(ctx context.Context, login, from string) error {
	deadline := time.Now().Add(s.cfg.ForgotMinDuration)
	err := s.forgot(ctx, login, from)
	s.waitUntil(ctx, deadline)
	return err
}

// forgot issues and mails a code when login names an account and the
// quotas allow: MailsPerHour per account and requesting address, so that
// requests from one address cannot use up another's, and
// MailsPerHourPerAccount per account, which gives way when the account
// holds no working code (none, expired, or killed by wrong tries), so that
// the owner can always get one.
func (s *Server) forgot(ctx context.Context, login, from string) error {
	u, err := s.accounts.FindByLogin(ctx, login)
	if errors.Is(err, account.ErrNotFound) {
		// The same quota look-ups as for a known login, so that both paths
		// cost alike; their answers do not matter.
		key := "login:" + account.NormalizeLogin(login)
		s.limiter.Allow(ctx, forgotQuota(s.cfg.MailsPerHour), key+"|"+from)
		s.limiter.Allow(ctx, forgotAccountQuota(s.cfg.MailsPerHourPerAccount), key)
		return nil
	} else if err != nil {
		return err
	}
	key := "user:" + strconv.FormatInt(u.ID, 10)
	allowed, _, err := s.limiter.Allow(ctx, forgotQuota(s.cfg.MailsPerHour), key+"|"+from)
	if err != nil || !allowed {
		return err
	}
	allowed, _, err = s.limiter.Allow(ctx, forgotAccountQuota(s.cfg.MailsPerHourPerAccount), key)
	if err != nil {
		return err
	}
	if !allowed {
		live, err := s.accounts.HasLiveResetCode(ctx, u.ID)
		if err != nil || live {
			return err
		}
	}
	return s.accounts.InTx(ctx, func(ctx context.Context) error {
		code, err := s.accounts.IssueResetCode(ctx, u.ID)
		if err != nil {
			return err
		}
		return s.mailer.Enqueue(ctx, s.resetMail(u, code))
	})
}

func forgotQuota(perHour int64) ratelimit.Rule {
	return ratelimit.Rule{Name: "forgot-mail", Limit: perHour, Window: time.Hour}
}

func forgotAccountQuota(perHour int64) ratelimit.Rule {
	return ratelimit.Rule{Name: "forgot-mail-account", Limit: perHour, Window: time.Hour}
}

// waitUntil sleeps until t, or until the client leaves.
func (s *Server) waitUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// badCode is the one answer for every reason a reset cannot proceed: wrong,
// used, expired or dead code, or unknown login.
func badCode(w http.ResponseWriter) {
	p := problem(http.StatusBadRequest, "invalid-code", "Invalid code", "The code is wrong, used or expired; request a new one.")
	p.Errors = []FieldError{{Field: "code", Code: "invalid", Message: "The code is wrong, used or expired."}}
	writeProblem(w, p)
}

// handleReset sets a new password with a mailed code (see ResetPassword).
func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	in, ok := readJSONObject(w, r, "login", "code", "new_password")
	if !ok {
		return
	}
	fields, err := s.ResetPassword(r.Context(), in["login"], in["code"], in["new_password"])
	switch {
	case errors.Is(err, account.ErrBadCode):
		badCode(w)
	case err != nil:
		s.fail(w, r, "reset", err)
	case len(fields) > 0:
		writeProblem(w, validationProblem(fields))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// ResetPassword sets a new password with a mailed code, then ends every
// grant of the user (refresh tokens revoked; access tokens issued before
// refused here; browser sessions ended) and tells them by mail. It is the
// one implementation behind POST /v1/password/reset and the "Forgot
// password?" page.
//
// A wrong, used, expired or dead code and an unknown login are all
// account.ErrBadCode, alike. A new password the rules refuse is a field
// error on "new_password" (and a nil error); the code stays usable then,
// as it is consumed only by a reset that succeeds. Nothing about the
// account is compared before the code is proven: the new password is
// checked against the username and email only then, so that a guessed
// email cannot be confirmed without the code. Like Forgot, it takes at
// least ForgotMinDuration: a wrong code costs a write for an account that
// holds a code and none for an unknown login, and the time must not tell
// them apart either.
func (s *Server) ResetPassword(ctx context.Context, login, code, newPassword string) ([]FieldError, error) {
	deadline := time.Now().Add(s.cfg.ForgotMinDuration)
	fields, err := s.resetPassword(ctx, login, code, newPassword)
	s.waitUntil(ctx, deadline)
	return fields, err
}

func (s *Server) resetPassword(ctx context.Context, login, code, newPassword string) ([]FieldError, error) {
	u, err := s.accounts.FindByLogin(ctx, login)
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u == nil {
		// The same code look-up as for a known login (no user has id 0),
		// so that both paths cost alike; it always fails.
		if err := s.accounts.CheckResetCode(ctx, 0, code); err != nil && !errors.Is(err, account.ErrBadCode) {
			return nil, fmt.Errorf("check code: %w", err)
		}
		return nil, account.ErrBadCode
	}
	if err := s.accounts.CheckResetCode(ctx, u.ID, code); errors.Is(err, account.ErrBadCode) {
		return nil, account.ErrBadCode
	} else if err != nil {
		return nil, fmt.Errorf("check code: %w", err)
	}
	// An absent password is an empty one: both are "required".
	if fe, ok := s.checkPassword(newPassword, true, u.Username, u.Email); !ok {
		fe.Field = "new_password"
		return []FieldError{fe}, nil
	}
	hash, err := s.accounts.Hasher().Hash(ctx, newPassword)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	err = s.accounts.InTx(ctx, func(ctx context.Context) error {
		if err := s.accounts.ConsumeResetCode(ctx, u.ID, code); err != nil {
			return err
		}
		if err := s.accounts.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		// The code came by mail to the address: that proves it as well
		// as a verification code would.
		if err := s.accounts.MarkEmailVerified(ctx, u.ID); err != nil {
			return err
		}
		if err := s.tokens.RevokeSubject(ctx, strconv.FormatInt(u.ID, 10)); err != nil {
			return err
		}
		if s.sessions != nil {
			if err := s.sessions.DeleteUser(ctx, u.ID); err != nil {
				return err
			}
		}
		return s.mailer.Enqueue(ctx, s.changedMail(u))
	})
	if errors.Is(err, account.ErrBadCode) {
		return nil, account.ErrBadCode
	} else if err != nil {
		return nil, fmt.Errorf("set password: %w", err)
	}
	return nil, nil
}

// resetMail carries a code. Only the outbox sees it; it is never logged.
// Like every security mail, it holds no text a user chose (names,
// username): whoever signs up with someone else's address must not be able
// to put words of theirs into mail from us to that address.
func (s *Server) resetMail(u *storage.User, code string) mail.Message {
	text := fmt.Sprintf("Hello,\n\nsomeone, hopefully you, asked to reset the password of the account of this email address at %s.\n\n"+
		"Your code: %s\n\nIt works once, for 15 minutes. If you did not ask for it, ignore this mail: your password stays as it is.\n",
		s.cfg.Issuer, code)
	body := fmt.Sprintf("<p>Hello,</p><p>someone, hopefully you, asked to reset the password of the account of this email address at %s.</p>"+
		"<p>Your code: <b style=\"font-size:1.4em;letter-spacing:.1em\">%s</b></p>"+
		"<p>It works once, for 15 minutes. If you did not ask for it, ignore this mail: your password stays as it is.</p>",
		html.EscapeString(s.cfg.Issuer), code)
	return mail.Message{To: u.Email, Subject: "Your password reset code", Text: text, HTML: body, UserID: u.ID}
}

func (s *Server) changedMail(u *storage.User) mail.Message {
	when := time.Now().UTC().Format("2 January 2006, 15:04 MST")
	text := fmt.Sprintf("Hello,\n\nthe password of the account of this email address at %s was changed on %s, and every device signed in with the old one was signed out.\n\n"+
		"If this was not you, reset your password at once and tell us.\n", s.cfg.Issuer, when)
	body := fmt.Sprintf("<p>Hello,</p><p>the password of the account of this email address at %s was changed on %s, and every device signed in with the old one was signed out.</p>"+
		"<p>If this was not you, reset your password at once and tell us.</p>",
		html.EscapeString(s.cfg.Issuer), when)
	return mail.Message{To: u.Email, Subject: "Your password was changed", Text: text, HTML: body, UserID: u.ID}
}
