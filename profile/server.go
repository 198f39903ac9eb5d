// Package profile is the user API, version 1: signup with an optional
// picture, the user's profile and picture, and user statistics for services.
// Its errors are RFC 9457 problem details.
package profile

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"

	"idp/account"
	"idp/budget"
	"idp/mail"
	"idp/oauth"
	"idp/picture"
	"idp/ratelimit"
	"idp/storage"
)

// Tokens is what the user API needs of the token service (*oauth.Server).
type Tokens interface {
	AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error)
	IssueTokens(ctx context.Context, client fosite.Client, userID int64, scopes []string) (map[string]any, error)
	Verify(ctx context.Context, r *http.Request, scopes ...string) (*oauth.Principal, error)
	RevokeSubject(ctx context.Context, subject string) error
	Client(ctx context.Context, id string) (fosite.Client, error)
}

// Sessions ends a user's browser sessions (*session.Store), on the
// transaction ctx carries.
type Sessions interface {
	DeleteUser(ctx context.Context, userID int64) error
	DeleteUserExcept(ctx context.Context, userID int64, keepID string) error
}

// Mailer queues mail for delivery (*mail.Outbox), on the transaction ctx
// carries.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// Limiter counts events against a rule (*ratelimit.Limiter).
type Limiter interface {
	Allow(ctx context.Context, rule ratelimit.Rule, key string) (bool, time.Duration, error)
}

// Users stores the changes the user API makes to a user's own profile
// (*storage.Store).
type Users interface {
	UpdateProfile(ctx context.Context, id int64, p storage.ProfileUpdate) (*storage.User, error)
	SwapPictureKey(ctx context.Context, id int64, current, key string) (bool, error)
}

// Deps are the services the user API is built on.
type Deps struct {
	Accounts *account.Service
	Users    Users
	Tokens   Tokens
	// Sessions are the browser sessions a password reset ends.
	Sessions Sessions
	Pictures picture.Store
	// PictureDeletions deletes picture objects no row names any more,
	// retrying while storage is down (an erased account's, a replaced
	// one's); nil: they are deleted once, and a failure only logged.
	PictureDeletions PictureDeletions
	Mailer           Mailer
	Limiter          Limiter
	// Memory is the memory budget picture decodes take their Memory from,
	// shared with password hashing; nil: decodes are bounded by the
	// decoding slots only.
	Memory *budget.Budget
	// Decode decodes an inspected upload; nil: (*picture.Upload).Process.
	// Tests replace it to see whether, and when, a picture is decoded.
	Decode func(*picture.Upload) (picture.Image, error)

	// Logins and BrowserSessions are the user's live logins that
	// /v1/sessions lists and ends.
	Logins          Logins
	BrowserSessions BrowserSessions

	// Passkeys serves /v1/passkeys; nil: those routes are not served.
	Passkeys Passkeys

	// Stats streams GET /v1/users/stats; Exports reads the account
	// export's rows; Transactions holds an erasure's transaction, in
	// which Accounts deletes the account's rows.
	Stats        StatsReader
	Exports      ExportReader
	Transactions Transactor
}

// Config configures the user API.
type Config struct {
	// Issuer is the service's public base URL.
	Issuer string
	// PasswordMinLength is the shortest password allowed, in characters
	// (default 12, never under 8).
	PasswordMinLength int
	// Pictures bounds uploads and sets the stored size.
	Pictures picture.Limits
	// MailsPerHour caps reset mails per account and requesting address
	// (default 3); MailsPerHourPerAccount caps them per account from all
	// addresses (default 10), except while the account holds no working
	// code. More requests are accepted and silently dropped.
	MailsPerHour, MailsPerHourPerAccount int64
	// ForgotMinDuration is the least time a forgot or reset request
	// takes, known login or not, so that timing does not tell which
	// accounts exist or hold a code (default 300 ms).
	ForgotMinDuration time.Duration
	// Guard rate-limits signup, forgot and reset per client address.
	Guard *ratelimit.Guard
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// ObserveEvent, when set, is told of each account lifecycle event by a
	// fixed name (email_verified, password_changed, account_erased, …).
	ObserveEvent func(event string)
	// Now is the clock (default time.Now): how old a token's login is.
	Now func() time.Time
	// UploadSpool bounds the bytes that bodies carrying pictures put in
	// the spool at once (HoldBody); 0: 64 pictures of Pictures.MaxBytes.
	UploadSpool int64
	// SpoolDir is where pictures wait, from the moment they are read until
	// their request ends, each in a file of its own that the request
	// removes (NewSpoolDir makes a fresh one); "": os.TempDir().
	SpoolDir string
}

// Server serves /v1.
type Server struct {
	cfg      Config
	log      *slog.Logger
	accounts *account.Service
	users    Users
	tokens   Tokens
	sessions Sessions
	logins   Logins
	browsers BrowserSessions
	passkeys Passkeys
	pictures picture.Store
	// deletions queues the deletion of pictures no row names any more.
	deletions PictureDeletions
	mailer    Mailer
	limiter   Limiter
	// decoding holds a slot per picture being decoded: one decode can take
	// a second of CPU, so they are capped like password hashes.
	decoding chan struct{}
	// uploads is the budget of the bytes that bodies carrying pictures
	// put in spoolDir (HoldBody).
	uploads  uploads
	spoolDir string
	// memory is the budget a decode takes its memory from; nil: none.
	memory     *budget.Budget
	decode     func(*picture.Upload) (picture.Image, error)
	decodeWait time.Duration

	stats        StatsReader
	exports      ExportReader
	transactions Transactor
}

// decodeWait is how long an upload waits for a decoding slot and its memory
// before 503.
const decodeWait = 5 * time.Second

// errBusy is returned when every decoding slot, or the memory budget, stays
// taken.
var errBusy = errors.New("profile: too many pictures being processed")

// process decodes an inspected upload in a decoding slot, with the memory it
// needs (Upload.Memory, known from its header) taken from the shared budget
// first, so that neither a flood of pictures nor one of logins can push the
// other past the budget.
func (s *Server) process(ctx context.Context, u *picture.Upload) (picture.Image, error) {
	if err := ctx.Err(); err != nil {
		return picture.Image{}, err
	}
	t := time.NewTimer(s.decodeWait)
	defer t.Stop()
	start := time.Now()
	select {
	case s.decoding <- struct{}{}:
	case <-t.C:
		return picture.Image{}, errBusy
	case <-ctx.Done():
		return picture.Image{}, ctx.Err()
	}
	defer func() { <-s.decoding }()
	if s.memory != nil {
		release, err := s.memory.Acquire(ctx, u.Memory(), s.decodeWait-time.Since(start))
		if err != nil {
			if ctx.Err() != nil {
				return picture.Image{}, ctx.Err()
			}
			return picture.Image{}, errBusy
		}
		// What the decode allocated is garbage once it returns: announced
		// before its bytes go back, so that the next holder of them (a
		// hash's 64 MiB buffer, most often) has it collected first instead
		// of adding to it.
		defer func() {
			s.memory.Discarded()
			release()
		}()
	}
	return s.decode(u)
}

// New returns the user API.
func New(cfg Config, d Deps) (*Server, error) {
	if cfg.PasswordMinLength == 0 {
		cfg.PasswordMinLength = DefaultPasswordMinLength
	}
	if cfg.PasswordMinLength < MinPasswordMinLength || cfg.PasswordMinLength > PasswordMaxLength {
		return nil, errors.New("profile: the minimum password length must be between 8 and 128")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Pictures.MaxBytes <= 0 {
		cfg.Pictures.MaxBytes = picture.DefaultMaxBytes
	}
	if cfg.MailsPerHour <= 0 {
		cfg.MailsPerHour = 3
	}
	if cfg.MailsPerHourPerAccount <= 0 {
		cfg.MailsPerHourPerAccount = 10
	}
	if cfg.ForgotMinDuration <= 0 {
		cfg.ForgotMinDuration = 300 * time.Millisecond
	}
	if cfg.ObserveEvent == nil {
		cfg.ObserveEvent = func(string) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if d.PictureDeletions == nil {
		d.PictureDeletions = onceDeletions{d.Pictures}
	}
	if d.Decode == nil {
		d.Decode = (*picture.Upload).Process
	}
	spoolDir := cfg.SpoolDir
	if spoolDir == "" {
		spoolDir = os.TempDir()
	}
	return &Server{cfg: cfg, log: cfg.Logger, accounts: d.Accounts, users: d.Users, tokens: d.Tokens, sessions: d.Sessions,
		logins: d.Logins, browsers: d.BrowserSessions, passkeys: d.Passkeys,
		pictures: d.Pictures, deletions: d.PictureDeletions, mailer: d.Mailer, limiter: d.Limiter,
		decoding: make(chan struct{}, runtime.GOMAXPROCS(0)), uploads: newUploads(cfg.UploadSpool, cfg.Pictures.MaxBytes), spoolDir: spoolDir, memory: d.Memory, decode: d.Decode, decodeWait: decodeWait,
		stats: d.Stats, exports: d.Exports, transactions: d.Transactions}, nil
}

// Mount adds the /v1 routes to r.
func (s *Server) Mount(r chi.Router) {
	r.With(s.limit("signup")).Post("/v1/users", s.handleSignup)
	r.With(s.limit("forgot")).Post("/v1/password/forgot", s.handleForgot)
	r.With(s.limit("reset")).Post("/v1/password/reset", s.handleReset)
	r.With(s.requireToken(oauth.ScopeUsersStats, false)).Get("/v1/users/stats", s.handleStats)
	r.Group(func(r chi.Router) {
		r.Use(s.requireToken(oauth.ScopeProfile, true))
		r.Get("/v1/profile", s.handleGetProfile)
		r.Patch("/v1/profile", s.handlePatchProfile)
		r.Put("/v1/profile/picture", s.handlePutPicture)
		r.Delete("/v1/profile/picture", s.handleDeletePicture)
		r.Delete("/v1/profile", s.handleEraseProfile)
		r.Post("/v1/email/verify", s.handleVerifyEmail)
		r.Post("/v1/email/verify/resend", s.handleResendVerification)
		r.Get("/v1/sessions", s.handleListSessions)
		r.Delete("/v1/sessions/{id}", s.handleEndSession)
		r.Get("/v1/profile/export", s.handleExport)
		r.With(s.limit("email-change")).Post("/v1/email/change", s.handleEmailChange)
		r.With(s.limit("password-change")).Post("/v1/password/change", s.handlePasswordChange)
		s.mountPasskeys(r)
	})
}

// limit rate-limits a route per client address with a 429 problem.
func (s *Server) limit(name string) func(http.Handler) http.Handler {
	return s.cfg.Guard.Limit(name, func(w http.ResponseWriter, r *http.Request, wait time.Duration) {
		writeProblem(w, problem(http.StatusTooManyRequests, "rate-limited", "Too many requests",
			"Too many requests from this address; retry after "+ratelimit.RetryAfter(wait)+" seconds."))
	})
}

type principalKey struct{}

// requireToken lets through requests with a valid bearer token carrying
// scope, and answers the others as RFC 6750 and the contract say: 401 with
// error="invalid_token" for a missing, expired, revoked or foreign token,
// 403 with error="insufficient_scope" for a token without the scope (or,
// where a user is needed, a service's own token).
func (s *Server) requireToken(scope string, needUser bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := s.tokens.Verify(r.Context(), r, scope)
			if err == nil && needUser && p.User == nil {
				err = oauth.ErrInsufficientScope
			}
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
			case errors.Is(err, oauth.ErrNoToken), errors.Is(err, oauth.ErrInvalidToken):
				w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(err, scope))
				writeProblem(w, problem(http.StatusUnauthorized, "invalid-token", "Invalid token",
					"The access token is missing, invalid, expired or revoked."))
			case errors.Is(err, oauth.ErrInsufficientScope):
				w.Header().Set("WWW-Authenticate", oauth.BearerChallenge(err, scope))
				detail := "The access token lacks the scope " + scope + "."
				if needUser {
					detail = "This needs a user's access token with the scope " + scope + "."
				}
				writeProblem(w, problem(http.StatusForbidden, "insufficient-scope", "Insufficient scope", detail))
			default:
				s.log.ErrorContext(r.Context(), "verify token", "err", err)
				unavailable(w, "The service cannot check tokens right now.")
			}
		})
	}
}

func principal(r *http.Request) *oauth.Principal {
	p, _ := r.Context().Value(principalKey{}).(*oauth.Principal)
	return p
}

// Profile is a user as the API shows it. It never holds a secret.
type Profile struct {
	ID            int64     `json:"id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	FirstName     string    `json:"first_name"`
	LastName      string    `json:"last_name"`
	Gender        string    `json:"gender"`
	PictureURL    *string   `json:"picture_url"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// profileOf shows u. When the picture store cannot make a URL, the profile
// is still served, with picture_url null and the failure logged: a profile
// read should not fail for want of a picture.
func (s *Server) profileOf(ctx context.Context, u *storage.User) Profile {
	p := Profile{
		ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
		FirstName: u.FirstName, LastName: u.LastName, Gender: string(u.Gender),
		CreatedAt: u.CreatedAt.UTC().Truncate(time.Second), UpdatedAt: u.UpdatedAt.UTC().Truncate(time.Second),
	}
	if u.HasPicture() {
		if url, err := s.pictures.URL(ctx, u.PictureKey); err != nil {
			s.log.WarnContext(ctx, "picture URL", "user", u.ID, "err", err)
		} else {
			p.PictureURL = &url
		}
	}
	return p
}
