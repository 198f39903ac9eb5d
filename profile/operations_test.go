package profile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"idp/account"
	"idp/database/databasetest"
	"idp/mail"
	"idp/picture"
	"idp/ratelimit"
	"idp/storage"
)

// The operations the /v1 handlers and the sign-in pages share, called
// directly: their typed errors are what the pages show per field.

type recordingMailer struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (m *recordingMailer) Enqueue(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

func (m *recordingMailer) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sent)
}

type recordingSessions struct {
	ended []int64
	kept  []string // the keepID of each DeleteUserExcept
}

func (s *recordingSessions) DeleteUser(_ context.Context, userID int64) error {
	s.ended = append(s.ended, userID)
	return nil
}

func (s *recordingSessions) DeleteUserExcept(_ context.Context, userID int64, keepID string) error {
	s.ended = append(s.ended, userID)
	s.kept = append(s.kept, keepID)
	return nil
}

type opsFixture struct {
	s        *Server
	accounts *account.Service
	mailer   *recordingMailer
	sessions *recordingSessions
	dir      string
}

// newOpsFixture is a Server on SQLite and a picture directory; wrap, when
// given, stands between the Server and the directory store.
func newOpsFixture(t *testing.T, wrap ...func(picture.Store) picture.Store) opsFixture {
	t.Helper()
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	users := storage.New(db)
	accounts := account.New(users, testHasher(t, 2, 2, time.Second), account.Options{CodeKey: make([]byte, 32)})
	dir := t.TempDir()
	store, err := picture.NewDirStore(dir, "http://idp.test")
	if err != nil {
		t.Fatal(err)
	}
	var pictures picture.Store = store
	for _, w := range wrap {
		pictures = w(pictures)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := opsFixture{accounts: accounts, mailer: &recordingMailer{}, sessions: &recordingSessions{}, dir: dir}
	f.s, err = New(Config{Issuer: "http://idp.test", Pictures: fuzzLimits, ForgotMinDuration: 150 * time.Millisecond, Logger: log}, Deps{
		Accounts: accounts, Users: users, Tokens: fakeTokens{}, Sessions: f.sessions, Pictures: pictures,
		Mailer: f.mailer, Limiter: ratelimit.New(users, log, time.Now),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f opsFixture) objects(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(f.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func signupInput(username string) SignupInput {
	return SignupInput{Username: username, Password: "a sturdy passphrase", Email: username + "@example.com",
		FirstName: "Ada", LastName: "Lovelace", Gender: "female"}
}

func TestCreateAccount(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)

	in := signupInput("Ada")
	in.Picture, in.HasPicture = bytes.NewReader(photoJPEG(t, 64, 48)), true
	var inside *storage.User
	u, err := f.s.CreateAccount(ctx, in, func(_ context.Context, u *storage.User) error {
		inside = u
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside == nil || inside.ID != u.ID || u.Username != "ada" || !u.HasPicture() {
		t.Fatalf("created %+v (inTx saw %+v)", u, inside)
	}
	if n := f.objects(t); n != 1 {
		t.Fatalf("%d stored objects, want the picture", n)
	}
	if _, err := f.accounts.Authenticate(ctx, "ada@example.com", in.Password, "192.0.2.1"); err != nil {
		t.Fatalf("the new account cannot log in: %v", err)
	}
	// The signup mailed a verification code, in the user's transaction;
	// the address stays unverified until it is used.
	if u.EmailVerified {
		t.Fatal("a new account's address is verified")
	}
	f.mailer.mu.Lock()
	sent := slices.Clone(f.mailer.sent)
	f.mailer.mu.Unlock()
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(sent[len(sent)-1].Text)
	if len(sent) != 1 || sent[0].To != "ada@example.com" || code == "" {
		t.Fatalf("mails after signup: %+v, want one verification code to ada@example.com", sent)
	}
	if err := f.accounts.VerifyEmail(ctx, u.ID, code); err != nil {
		t.Fatalf("verify with the mailed code: %v", err)
	}
	if got, err := f.accounts.Get(ctx, u.ID); err != nil || !got.EmailVerified {
		t.Fatalf("after verification: %+v %v", got, err)
	}

	t.Run("inTx fails: nothing is left", func(t *testing.T) {
		in := signupInput("bob")
		in.Picture, in.HasPicture = bytes.NewReader(photoJPEG(t, 32, 32)), true
		boom := errors.New("boom")
		_, err := f.s.CreateAccount(ctx, in, func(context.Context, *storage.User) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err %v, want the callback's", err)
		}
		if taken, _ := f.accounts.Taken(ctx, "bob", "bob@example.com"); len(taken) != 0 {
			t.Fatalf("a failed signup left %v", taken)
		}
		if n := f.objects(t); n != 1 {
			t.Fatalf("%d stored objects, want only Ada's", n)
		}
	})

	tests := []struct {
		name  string
		edit  func(*SignupInput)
		check func(t *testing.T, err error)
	}{
		{"invalid fields, each named", func(in *SignupInput) { in.Username, in.Email, in.LastName = "a", "nope", "" },
			func(t *testing.T, err error) {
				var v *ValidationError
				if !errors.As(err, &v) {
					t.Fatalf("err %v, want a ValidationError", err)
				}
				var fields []string
				for _, fe := range v.Errors {
					fields = append(fields, fe.Field)
				}
				if !slices.Equal(fields, []string{"username", "email", "last_name"}) {
					t.Fatalf("fields %v", fields)
				}
			}},
		{"read errors come first", func(in *SignupInput) {
			in.Invalid = []FieldError{{Field: "first_name", Code: "too_long", Message: "At most 4 KiB."}}
		}, func(t *testing.T, err error) {
			var v *ValidationError
			if !errors.As(err, &v) || len(v.Errors) != 1 || v.Errors[0].Code != "too_long" {
				t.Fatalf("err %v, want the read error", err)
			}
		}},
		{"username and email taken", func(in *SignupInput) { in.Username, in.Email = "ADA", "Ada@Example.com" },
			func(t *testing.T, err error) {
				var taken *TakenError
				if !errors.As(err, &taken) || !slices.Equal(taken.Fields, []string{"username", "email"}) || !errors.Is(err, account.ErrTaken) {
					t.Fatalf("err %v, want both taken", err)
				}
			}},
		{"not an image", func(in *SignupInput) {
			in.Picture, in.HasPicture = bytes.NewReader([]byte("plain text, not an image")), true
		},
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrNotImage) {
					t.Fatalf("err %v, want ErrNotImage", err)
				}
			}},
		{"an empty picture is not an image", func(in *SignupInput) { in.Picture, in.HasPicture = nil, true },
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrNotImage) {
					t.Fatalf("err %v, want ErrNotImage", err)
				}
			}},
		{"too many bytes", func(in *SignupInput) {
			in.Picture, in.HasPicture = bytes.NewReader(make([]byte, fuzzLimits.MaxBytes+1)), true
		},
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrPictureTooLarge) {
					t.Fatalf("err %v, want ErrPictureTooLarge", err)
				}
			}},
		{"too many pixels, with the other fields", func(in *SignupInput) {
			in.Picture, in.HasPicture = bytes.NewReader(photoJPEG(t, 300, 10)), true
			in.Gender = "other"
		}, func(t *testing.T, err error) {
			var v *ValidationError
			if !errors.As(err, &v) || len(v.Errors) != 2 || v.Errors[0].Field != "picture" || v.Errors[1].Field != "gender" {
				t.Fatalf("err %v, want picture and gender", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := signupInput("carol")
			tc.edit(&in)
			called := false
			u, err := f.s.CreateAccount(ctx, in, func(context.Context, *storage.User) error { called = true; return nil })
			if u != nil || called {
				t.Fatalf("created %+v (inTx called: %v)", u, called)
			}
			tc.check(t, err)
			if n := f.objects(t); n != 1 {
				t.Fatalf("%d stored objects, want only Ada's", n)
			}
		})
	}
}

func TestResetPassword(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)
	u, err := f.s.CreateAccount(ctx, signupInput("ada"), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := f.accounts.IssueResetCode(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "00000000"
	if code == wrong {
		wrong = "11111111"
	}
	for _, tc := range []struct{ name, login, code string }{
		{"wrong code", "ada", wrong},
		{"unknown login", "nobody", code},
		{"empty code", "ada", ""},
	} {
		if fields, err := f.s.ResetPassword(ctx, tc.login, tc.code, "another sturdy passphrase"); !errors.Is(err, account.ErrBadCode) || fields != nil {
			t.Errorf("%s: %v %v, want ErrBadCode", tc.name, fields, err)
		}
	}
	fields, err := f.s.ResetPassword(ctx, "ada", code, "ada@example.com")
	if err != nil || len(fields) != 1 || fields[0].Field != "new_password" || fields[0].Code != "matches_login" {
		t.Fatalf("a password like the login: %v %v", fields, err)
	}
	if len(f.sessions.ended) != 0 {
		t.Fatalf("sessions ended before a reset: %v", f.sessions.ended)
	}
	// The refused password did not use up the code.
	if fields, err := f.s.ResetPassword(ctx, "ADA@example.com", code, "another sturdy passphrase"); err != nil || fields != nil {
		t.Fatalf("reset: %v %v", fields, err)
	}
	if !slices.Equal(f.sessions.ended, []int64{u.ID}) {
		t.Fatalf("sessions ended %v, want the user's", f.sessions.ended)
	}
	if _, err := f.accounts.Authenticate(ctx, "ada", "another sturdy passphrase", "192.0.2.1"); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
	if _, err := f.s.ResetPassword(ctx, "ada", code, "a third sturdy passphrase"); !errors.Is(err, account.ErrBadCode) {
		t.Fatalf("a used code: %v, want ErrBadCode", err)
	}
	// The reset code came by mail: the address is proven.
	if got, err := f.accounts.Get(ctx, u.ID); err != nil || !got.EmailVerified {
		t.Fatalf("after a reset by code: %+v %v, want the address verified", got, err)
	}
}

func TestForgotTakesTheSameTimeEitherWay(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)
	if _, err := f.s.CreateAccount(ctx, signupInput("ada"), nil); err != nil {
		t.Fatal(err)
	}
	signupMails := f.mailer.count() // the verification code
	for _, tc := range []struct {
		login string
		mails int
	}{{"nobody", 0}, {"ada", 1}} {
		start := time.Now()
		if err := f.s.Forgot(ctx, tc.login, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("%s: answered after %v, before the floor", tc.login, d)
		}
		if n := f.mailer.count() - signupMails; n != tc.mails {
			t.Errorf("%s: %d mails, want %d", tc.login, n, tc.mails)
		}
	}
}

// TestResetTakesTheFloorEitherWay: a wrong code for an account that holds
// one costs a write that an unknown login does not; both answer alike and
// neither before the floor.
func TestResetTakesTheFloorEitherWay(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t)
	if _, err := f.s.CreateAccount(ctx, signupInput("ada"), nil); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Forgot(ctx, "ada", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	for _, login := range []string{"nobody", "ada"} {
		for _, code := range []string{"x", "00000000"} {
			start := time.Now()
			if _, err := f.s.ResetPassword(ctx, login, code, "a new password 123"); !errors.Is(err, account.ErrBadCode) {
				t.Fatalf("%s with code %q: %v, want ErrBadCode", login, code, err)
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Errorf("%s with code %q: answered after %v, before the floor", login, code, d)
			}
		}
	}
}

// putThenFail stores the object and then reports a failure, as a store does
// whose write finished as the request ended.
type putThenFail struct{ picture.Store }

func (p putThenFail) Put(ctx context.Context, key string, img picture.Image) error {
	if err := p.Store.Put(ctx, key, img); err != nil {
		return err
	}
	return errors.New("the write outlived its request")
}

// TestFailedPutLeavesNoObject: a picture whose Put failed may be stored all
// the same; no row will name it, so it is deleted (CONTRACT §3: a failed
// signup leaves no object in storage).
func TestFailedPutLeavesNoObject(t *testing.T) {
	ctx := context.Background()
	f := newOpsFixture(t, func(s picture.Store) picture.Store { return putThenFail{s} })
	in := signupInput("ada")
	in.Picture, in.HasPicture = bytes.NewReader(photoJPEG(t, 32, 32)), true
	if _, err := f.s.CreateAccount(ctx, in, nil); err == nil {
		t.Fatal("a signup whose picture could not be stored succeeded")
	}
	if n := f.objects(t); n != 0 {
		t.Errorf("%d objects after the failed signup, want none", n)
	}
	// Replacing a picture (PUT /v1/profile/picture's and the account
	// page's path) alike.
	u, err := f.s.CreateAccount(ctx, signupInput("bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.ReplacePicture(ctx, u, bytes.NewReader(photoJPEG(t, 32, 32))); err == nil {
		t.Fatal("a picture that could not be stored replaced the old one")
	}
	if n := f.objects(t); n != 0 {
		t.Errorf("%d objects after the failed replacement, want none", n)
	}
}
