// Package account holds user accounts and their credentials: creating a
// user, checking a login, reading a user.
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"idp/password"
	"idp/storage"
)

// Errors of the account service.
var (
	// ErrInvalidCredentials is the one answer for an unknown login and a
	// wrong password, so that neither can be told from the other.
	ErrInvalidCredentials = errors.New("account: invalid credentials")
	ErrNotFound           = errors.New("account: user not found")
	// ErrTaken is wrapped (with a *TakenError naming the field) when a
	// username or email belongs to someone else.
	ErrTaken = errors.New("account: taken")
)

// Options configure the account service. Zero values take the defaults.
type Options struct {
	// Lockout: after LockThreshold failed logins (default 5) from one
	// client address, an account is locked for that address for LockBase
	// (default 1 minute), doubling with every further failure up to
	// LockMax (default 1 hour). After AccountLockThreshold consecutive
	// failures from all addresses together (default 100, the ceiling of
	// NIST SP 800-63B §5.2.2) it is locked for every address alike.
	LockThreshold        int
	AccountLockThreshold int
	LockBase, LockMax    time.Duration
	// CodeKey keys the HMAC under which one-time codes are stored (at
	// least 32 bytes; required for password reset and email verification).
	CodeKey []byte
	// CodeTTL is how long a reset code lives (default 15 minutes).
	CodeTTL time.Duration
	// VerifyCodeTTL is how long an email verification code lives (default
	// 24 hours).
	VerifyCodeTTL time.Duration
	// OnLoginFailed and OnLockout, when set, are told of each failed
	// password check and each lock-out imposed (for metrics).
	OnLoginFailed, OnLockout func()
	Logger                   *slog.Logger
	Now                      func() time.Time
}

// Store is the storage of accounts (*storage.Store).
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error

	CreateUser(ctx context.Context, nu storage.NewUser) (*storage.User, error)
	UserByID(ctx context.Context, id int64) (*storage.User, error)
	UserByUsername(ctx context.Context, username string) (*storage.User, error)
	UserByEmail(ctx context.Context, forms ...string) (*storage.User, error)
	UsernameTaken(ctx context.Context, username string) (bool, error)
	EmailTaken(ctx context.Context, exceptID int64, forms ...string) (bool, error)
	RehashPassword(ctx context.Context, id int64, old, new string) (bool, error)
	SetPassword(ctx context.Context, id int64, hash string, changedAt time.Time) error
	SetEmailVerified(ctx context.Context, id int64) error
	ChangeEmail(ctx context.Context, id int64, email string) error

	PutCode(ctx context.Context, c storage.Code) error
	CodeOf(ctx context.Context, userID int64, p storage.CodePurpose) (*storage.Code, error)
	LiveCodeOf(ctx context.Context, userID int64, p storage.CodePurpose, now time.Time, maxAttempts int) (*storage.Code, error)
	HasLiveCode(ctx context.Context, userID int64, p storage.CodePurpose, now time.Time, maxAttempts int) (bool, error)
	CodesOf(ctx context.Context, userID int64, ps ...storage.CodePurpose) ([]*storage.Code, error)
	CountCodeAttempt(ctx context.Context, userID int64, p storage.CodePurpose) error
	ConsumeCode(ctx context.Context, userID int64, p storage.CodePurpose, hash []byte, now time.Time, maxAttempts int) (bool, error)
	DeleteCodes(ctx context.Context, userID int64, ps ...storage.CodePurpose) error
	DeleteExpiredCodes(ctx context.Context, now time.Time) (int, error)

	LoginThrottles(ctx context.Context, keys ...string) ([]*storage.LoginThrottle, error)
	StartLoginThrottle(ctx context.Context, key string, now time.Time) error
	RestartLoginThrottle(ctx context.Context, key string, now, staleBefore time.Time) (bool, error)
	AddLoginFailure(ctx context.Context, key string, now time.Time) error
	LockLogin(ctx context.Context, key string, until time.Time) error
	DeleteLoginThrottles(ctx context.Context, keys ...string) error
	DeleteLoginThrottlesOf(ctx context.Context, key string) error
	DeleteStaleLoginThrottles(ctx context.Context, cutoff, now time.Time) (int, error)

	EraseUser(ctx context.Context, userID int64, names func(*storage.User) storage.ErasureNames) (*storage.User, error)
}

// Service manages accounts.
type Service struct {
	store  Store
	hasher *password.Hasher
	log    *slog.Logger
	opts   Options
}

// New returns the account service.
func New(store Store, hasher *password.Hasher, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockThreshold <= 0 {
		opts.LockThreshold = 5
	}
	if opts.AccountLockThreshold <= 0 {
		opts.AccountLockThreshold = 100
	}
	if opts.LockBase <= 0 {
		opts.LockBase = time.Minute
	}
	if opts.LockMax <= 0 {
		opts.LockMax = time.Hour
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = 15 * time.Minute
	}
	if opts.VerifyCodeTTL <= 0 {
		opts.VerifyCodeTTL = 24 * time.Hour
	}
	return &Service{store: store, hasher: hasher, log: opts.Logger, opts: opts}
}

// Hasher returns the password hasher.
func (s *Service) Hasher() *password.Hasher { return s.hasher }

// InTx runs fn in a transaction of the account storage, which every
// method of the service called with fn's context joins: a signup's user,
// code and mail commit together. When ctx carries a transaction already,
// fn joins it.
func (s *Service) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.store.InTx(ctx, fn)
}

// NormalizeLogin is how usernames and emails are stored and looked up: they
// are unique regardless of letter case, and an email's domain in any of its
// spellings (bücher.example, xn--bcher-kva.example) is one domain. A login
// whose domain IDNA refuses is only lower-cased: it names no account.
func NormalizeLogin(login string) string {
	login = strings.ToLower(strings.TrimSpace(login))
	if email, err := NormalizeEmail(login); err == nil {
		return email
	}
	return login
}

// ErrBadDomain is returned for an email address whose domain is not a
// valid (internationalised) domain name.
var ErrBadDomain = errors.New("account: the email domain is not a valid domain name")

// NormalizeEmail lower-cases an address and writes its domain in the ASCII
// (A-label) form of IDNA (UTS #46, the lookup profile), so that every
// spelling of one domain is one address; the local part is only
// lower-cased. A login without "@" is returned lower-cased; a domain IDNA
// refuses gives ErrBadDomain.
func NormalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	i := strings.LastIndexByte(email, '@')
	if i < 0 {
		return email, nil
	}
	domain, err := idna.Lookup.ToASCII(email[i+1:])
	if err != nil || domain == "" {
		return email, ErrBadDomain
	}
	return email[:i+1] + strings.ToLower(domain), nil
}

// emailSpellings are the stored forms an address may have: the normalised
// one, and for accounts stored before domains were normalised, the
// address as given and with its domain in Unicode (U-label) form.
func emailSpellings(given, normalized string) []string {
	forms := []string{normalized}
	add := func(f string) {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	add(given)
	if i := strings.LastIndexByte(normalized, '@'); i >= 0 {
		if u, err := idna.Lookup.ToUnicode(normalized[i+1:]); err == nil {
			add(normalized[:i+1] + u)
		}
	}
	return forms
}

// Authenticate checks a login, the username or the email address in any
// letter case, and a password, of a client at the address from. An unknown
// login costs the same password hash as a known one and gives the same
// ErrInvalidCredentials. When the stored hash was made with other
// parameters than the configured ones, it is replaced after a successful
// check. Overload gives password.ErrBusy.
//
// Failed logins lock the account for the address they come from, and past
// a higher count for every address (see Options); a locked account answers
// *LockedError whatever the password, without checking it. So an attacker
// guessing from elsewhere does not lock the owner out. Unknown logins are
// counted and locked the same way, so the lock-out does not tell which
// accounts exist.
func (s *Service) Authenticate(ctx context.Context, login, pw, from string) (*storage.User, error) {
	login = NormalizeLogin(login)
	u, err := s.FindByLogin(ctx, login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	keys := keysOf(login, u, from)
	throttle, err := s.throttles(ctx, keys)
	if err != nil {
		return nil, err
	}
	if err := s.locked(throttle); err != nil {
		return nil, err
	}
	if u == nil {
		if err := s.hasher.VerifyDummy(ctx, pw); err != nil {
			return nil, err
		}
		return nil, s.failed(ctx, keys, throttle)
	}
	return s.checkHash(ctx, u, pw, keys, throttle)
}

// checkHash verifies pw against u's stored hash and counts the outcome
// against keys, whose throttles were read as throttle: a failure toward
// the lock-out, a success clearing the address's failures (and rehashing
// a hash of older parameters).
func (s *Service) checkHash(ctx context.Context, u *storage.User, pw string, keys loginKeys, throttle throttles) (*storage.User, error) {
	ok, rehash, err := s.hasher.Verify(ctx, u.PasswordHash, pw)
	if err != nil {
		if errors.Is(err, password.ErrMalformedHash) {
			s.log.ErrorContext(ctx, "stored password hash is malformed", "user", u.ID)
			return nil, ErrInvalidCredentials
		}
		return nil, err
	}
	if !ok {
		return nil, s.failed(ctx, keys, throttle)
	}
	s.succeeded(ctx, keys, throttle)
	if rehash {
		s.rehash(ctx, u, pw)
	}
	return u, nil
}

// FindByLogin returns the user with this username or email address, in any
// letter case.
func (s *Service) FindByLogin(ctx context.Context, login string) (*storage.User, error) {
	given := strings.ToLower(strings.TrimSpace(login))
	login = NormalizeLogin(login)
	if login == "" {
		return nil, ErrNotFound
	}
	var u *storage.User
	var err error
	if !strings.Contains(login, "@") {
		u, err = s.store.UserByUsername(ctx, login)
	} else {
		// The normalised spelling wins over an older one, should both
		// exist.
		u, err = s.store.UserByEmail(ctx, emailSpellings(given, login)...)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("account: find user: %w", err)
	}
	return u, nil
}

// rehash stores a hash with the current parameters. The update is
// conditional on the old hash, so a password changed meanwhile is never
// overwritten; failure only means the old hash stays.
func (s *Service) rehash(ctx context.Context, u *storage.User, pw string) {
	h, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		s.log.WarnContext(ctx, "rehash password", "user", u.ID, "err", err)
		return
	}
	if _, err := s.store.RehashPassword(ctx, u.ID, u.PasswordHash, h); err != nil {
		s.log.WarnContext(ctx, "store rehashed password", "user", u.ID, "err", err)
	}
}

// Get returns a user by id.
func (s *Service) Get(ctx context.Context, id int64) (*storage.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return u, err
}

// NewUser is an account to create. Its fields are expected to be validated
// already (the user API does); Insert normalises the login names.
type NewUser struct {
	Username, Email     string
	Password            string // hashed by Create
	PasswordHash        string // what Insert stores
	FirstName, LastName string
	Gender              storage.Gender // empty: unspecified
	PictureKey          string
}

// Create hashes the password and stores the user.
func (s *Service) Create(ctx context.Context, nu NewUser) (*storage.User, error) {
	h, err := s.hasher.Hash(ctx, nu.Password)
	if err != nil {
		return nil, err
	}
	nu.PasswordHash = h
	return s.Insert(ctx, nu)
}

// Insert stores a user whose password is already hashed, on the
// transaction ctx carries if any: a signup hashes first, then inserts the
// user and issues its tokens in one short transaction. A taken username or
// email gives an error wrapping ErrTaken that names the field.
func (s *Service) Insert(ctx context.Context, nu NewUser) (*storage.User, error) {
	if nu.PasswordHash == "" {
		return nil, errors.New("account: insert without a password hash")
	}
	u, err := s.store.CreateUser(ctx, storage.NewUser{
		Username:     NormalizeLogin(nu.Username),
		Email:        NormalizeLogin(nu.Email),
		PasswordHash: nu.PasswordHash,
		FirstName:    nu.FirstName,
		LastName:     nu.LastName,
		Gender:       nu.Gender,
		PictureKey:   nu.PictureKey,
	})
	if err != nil {
		return nil, takenError(err)
	}
	return u, nil
}

// TakenError says which unique field a new user collided on.
type TakenError struct{ Field string }

func (e *TakenError) Error() string { return "account: " + e.Field + " is taken" }

// Is makes errors.Is(err, ErrTaken) true.
func (e *TakenError) Is(target error) bool { return target == ErrTaken }

// takenError gives the *TakenError of a storage conflict on a user's
// unique field, and any other error as it is. A user row has two unique
// values besides its id: a conflict that names neither is the username's.
func takenError(err error) error {
	var c *storage.ConflictError
	if !errors.As(err, &c) {
		return err
	}
	field := "username"
	if c.Field == "email" {
		field = "email"
	}
	return fmt.Errorf("%w: %w", &TakenError{Field: field}, err)
}

// Taken reports which of username and email already belong to someone,
// a cheap check before the expensive password hash; the unique indexes
// still decide races.
func (s *Service) Taken(ctx context.Context, username, email string) ([]string, error) {
	var taken []string
	for _, c := range []struct {
		field string
		exist func() (bool, error)
	}{
		{"username", func() (bool, error) {
			return s.store.UsernameTaken(ctx, NormalizeLogin(username))
		}},
		{"email", func() (bool, error) {
			forms := emailSpellings(strings.ToLower(strings.TrimSpace(email)), NormalizeLogin(email))
			return s.store.EmailTaken(ctx, 0, forms...)
		}},
	} {
		ok, err := c.exist()
		if err != nil {
			return nil, err
		}
		if ok {
			taken = append(taken, c.field)
		}
	}
	return taken, nil
}
