package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"idp"
	"idp/account"
	"idp/accountpage"
	"idp/budget"
	"idp/consent"
	"idp/database"
	"idp/keys"
	"idp/mail"
	"idp/metrics"
	"idp/oauth"
	"idp/pages"
	"idp/passkey"
	"idp/password"
	"idp/picture"
	"idp/profile"
	"idp/ratelimit"
	"idp/session"
	"idp/signin"
	"idp/storage"
)

// app is idp assembled from its configuration: what `idp serve` runs and
// what the other commands use a part of.
type app struct {
	cfg      config
	log      *slog.Logger
	db       *database.DB
	store    *storage.Store
	keys     *keys.Manager
	clients  *oauth.Clients
	accounts *account.Service
	oauth    *oauth.Server
	pictures picture.Store
	profile  *profile.Server
	limiter  *ratelimit.Limiter
	clientIP ratelimit.ClientIP
	// memory is the budget password hashes and picture decodes share.
	memory  *budget.Budget
	metrics *metrics.Metrics
	outbox  *mail.Outbox
	mailer  mail.Sender
	// pictureDeletions retries the deletion of pictures no row names.
	pictureDeletions *picture.DeletionQueue
	// The browser sign-in.
	sessions *session.Store
	consents *consent.Store
	signin   *signin.Handler
	account  *accountpage.Handler
	// passkeys is nil when the issuer's host cannot be a WebAuthn RP ID
	// (an IP address).
	passkeys *passkey.Service
	// removeSpool removes the directory uploads are spooled to.
	removeSpool func() error
}

// openDB opens (and in the embedded default creates) the database and
// brings its schema up to date.
func openDB(ctx context.Context, cfg config, log *slog.Logger) (*database.DB, error) {
	url, setting := cfg.DatabaseURL, "IDP_DATABASE_URL"
	if cfg.embedded() {
		url, setting = "sqlite://"+cfg.path("idp.db"), "IDP_DATA_DIR"
	}
	// The errors name the setting to fix; database.Open redacts the
	// password from the URL it shows.
	db, err := database.Open(ctx, url, database.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return db, nil
}

// keyEncryptionKey is the configured key, or in the embedded default the one
// generated into the data directory.
func keyEncryptionKey(cfg config) ([]byte, error) {
	if cfg.kek != nil {
		return cfg.kek, nil
	}
	return keys.LoadOrCreateKEKFile(cfg.path("key-encryption-key"))
}

func newKeyManager(cfg config, db *database.DB, log *slog.Logger) (*keys.Manager, error) {
	kek, err := keyEncryptionKey(cfg)
	if err != nil {
		return nil, err
	}
	return newKeyManagerWith(cfg, storage.New(db), kek, log)
}

func newKeyManagerWith(cfg config, store *storage.Store, kek []byte, log *slog.Logger) (*keys.Manager, error) {
	return keys.NewManager(store, kek, keys.Options{
		Size:            cfg.KeySize,
		RotationPeriod:  cfg.KeyRotationPeriod,
		PublishLead:     cfg.KeyPublishLead,
		RetainRetired:   max(cfg.AccessTokenTTL, cfg.IDTokenTTL),
		RefreshInterval: cfg.KeyRefreshInterval,
		Now:             cfg.keyClock,
		Logger:          log,
	})
}

// newHasher makes the password hasher and the memory budget it shares with
// picture decoding: the budget is the hashes' own (concurrency × argon2
// memory), so that hashing alone can still use all of it.
//
// When the hasher drops its buffers (after the start-up dummy hash, and
// after 30 s without a login) the process gives back what it holds unused
// (cfg.trim, residency.Trim): the heap's free pages and the executable's
// pages that only start-up touched.
func newHasher(cfg config, log *slog.Logger) (*password.Hasher, *budget.Budget, error) {
	p := password.DefaultParams()
	if cfg.Argon2MemoryKiB != 0 {
		p.Memory = uint32(cfg.Argon2MemoryKiB)
	}
	if cfg.Argon2Iterations != 0 {
		p.Iterations = uint32(cfg.Argon2Iterations)
	}
	if cfg.Argon2Parallelism != 0 {
		p.Parallelism = uint8(min(cfg.Argon2Parallelism, 255))
	}
	if err := p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("IDP_ARGON2_…: %w", err)
	}
	memory := budget.New(password.MemoryBudget(p, cfg.HashConcurrency))
	opts := []password.Option{password.WithBudget(memory)}
	if cfg.trim != nil {
		opts = append(opts, password.WithRelease(func() { trimMemory(cfg.trim, log) }))
	}
	h, err := password.NewHasher(p, cfg.HashConcurrency, cfg.HashQueueTimeout, opts...)
	if err != nil {
		return nil, nil, err
	}
	return h, memory, nil
}

// trimMemory gives unused memory back to the system with trim
// (residency.Trim). A kernel that refuses costs only the memory, so it is
// logged, not fatal.
func trimMemory(trim func() error, log *slog.Logger) {
	if err := trim(); err != nil {
		log.Warn("memory not trimmed", "err", err)
	}
}

// mobileClient is the public, first-party client of the embedded default,
// so that the README's examples work on first start: the password grant
// for curl, and the browser sign-in for a native app (RFC 8252: a loopback
// redirect on any port, and a private-use scheme).
var mobileClient = oauth.NewClient{
	ID:           "mobile",
	Public:       true,
	FirstParty:   true,
	GrantTypes:   []string{oauth.GrantPassword, oauth.GrantRefreshToken, oauth.GrantAuthorizationCode},
	Scopes:       []string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail, oauth.ScopeOfflineAccess},
	RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.idp:/callback"},
}

// accountClient is the account page's client: first-party (no consent),
// public, the authorization code only, back to the page itself.
func accountClient(issuer string) oauth.NewClient {
	return oauth.NewClient{
		ID:           accountpage.ClientID,
		Public:       true,
		FirstParty:   true,
		GrantTypes:   []string{oauth.GrantAuthorizationCode},
		Scopes:       []string{oauth.ScopeOpenID},
		RedirectURIs: []string{accountpage.RedirectURI(issuer)},
	}
}

// clientCacheTTL bounds how long a client change takes to reach every
// process.
const clientCacheTTL = 30 * time.Second

// newApp assembles the server. It loads (or, on first start, creates) the
// signing keys, so the returned app can sign at once.
func newApp(ctx context.Context, cfg config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, metrics: metrics.New()}
	if a.db, err = openDB(ctx, cfg, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.db.Close()
		}
	}()
	a.store = storage.New(a.db)
	kek, err := keyEncryptionKey(cfg)
	if err != nil {
		return nil, err
	}
	if a.keys, err = newKeyManagerWith(cfg, a.store, kek, log); err != nil {
		return nil, err
	}
	if err := a.keys.Load(ctx); err != nil {
		return nil, err
	}
	hasher, memory, err := newHasher(cfg, log)
	if err != nil {
		return nil, err
	}
	a.memory = memory
	codeKey, err := hkdf.Key(sha256.New, kek, nil, "idp reset codes", 32)
	if err != nil {
		return nil, err
	}
	// The pages' keys: the same on every replica, as the KEK is, and
	// each for one purpose.
	csrfKey, err := hkdf.Key(sha256.New, kek, nil, "idp page csrf", 32)
	if err != nil {
		return nil, err
	}
	flowKey, err := hkdf.Key(sha256.New, kek, nil, "idp sign-in flow", 32)
	if err != nil {
		return nil, err
	}
	a.accounts = account.New(a.store, hasher, account.Options{
		CodeKey: codeKey, Logger: log, Now: cfg.clock,
		OnLoginFailed: a.metrics.LoginFailed, OnLockout: a.metrics.LockedOut,
	})
	a.limiter = ratelimit.New(a.store, log, cfg.clock)
	a.clientIP = cfg.clientIP
	guard := &ratelimit.Guard{Limiter: a.limiter, PerMinute: int64(cfg.RateLimitPerIP), ClientIP: a.clientIP.Of}
	if a.mailer, err = newMailSender(cfg); err != nil {
		return nil, err
	}
	outboxOpts := cfg.outbox
	outboxOpts.Logger = log
	a.outbox = mail.NewOutbox(a.store, a.mailer, outboxOpts)
	a.clients = oauth.NewClients(a.store, clientCacheTTL)
	// Every deployment has the account page, and so its client, but for
	// an issuer on plain http away from loopback: no client may have a
	// redirect URI there, so the page is off and the log says why.
	if ac := accountClient(cfg.Issuer); ac.Validate() != nil {
		log.Warn("the account page is off: it needs an https (or loopback) issuer", "err", ac.Validate())
	} else if err := a.clients.Ensure(ctx, ac); err != nil {
		return nil, fmt.Errorf("the account page's client: %w", err)
	}
	secrets := cfg.refreshSecrets
	if cfg.embedded() {
		// Ensure, not create: a data directory from an older version gets
		// what the client holds now.
		if err := a.clients.Ensure(ctx, mobileClient); err != nil {
			return nil, fmt.Errorf("the mobile client: %w", err)
		}
		s, err := secretFile(cfg.path("refresh-token-secret"), keys.NewKEK)
		if err != nil {
			return nil, fmt.Errorf("refresh token secret: %w", err)
		}
		secrets = [][]byte{[]byte(s)}
	}
	popts, err := pictureOptions(cfg)
	if err != nil {
		return nil, err
	}
	if a.pictures, err = picture.Open(ctx, cfg.PicturesURL, cfg.Issuer, append(popts, picture.WithLogger(log))...); err != nil {
		return nil, fmt.Errorf("IDP_PICTURES_URL: %w", err)
	}
	a.pictureDeletions = picture.NewDeletionQueue(a.store, a.pictures, deletionOptions(cfg, log))
	a.oauth, err = oauth.New(oauth.Config{
		Issuer:              cfg.Issuer,
		AccessTokenTTL:      cfg.AccessTokenTTL,
		RefreshTokenTTL:     cfg.RefreshTokenTTL,
		IDTokenTTL:          cfg.IDTokenTTL,
		RefreshTokenSecrets: secrets,
		RefreshReuseLeeway:  cfg.RefreshReuseLeeway,
		Logger:              log,
		Now:                 cfg.clock,
		PictureURL:          a.pictures.URL,
		Guard:               guard,
		ObserveGrant:        a.metrics.Grant,
		UILocales:           pages.Languages(),
	}, a.store, a.keys, a.accounts, a.clients)
	if err != nil {
		return nil, err
	}
	a.sessions = session.NewStore(a.store, session.Options{TTL: cfg.SessionTTL, IdleTTL: cfg.SessionIdleTTL, Now: cfg.clock})
	a.consents = consent.NewStore(a.store, cfg.clock)
	if a.passkeys, err = passkey.New(a.store, passkey.Config{Issuer: cfg.Issuer, Origins: cfg.webauthnOrigins, Mailer: a.outbox, Now: cfg.clock}); err != nil {
		log.Warn("passkeys are off", "err", err)
		a.passkeys = nil
	}
	var passkeys profile.Passkeys
	if a.passkeys != nil { // a nil *passkey.Service would make a non-nil interface
		passkeys = a.passkeys
	}
	// A fresh directory of this process's own: whatever a crashed one
	// left in its own is never read.
	spoolDir, removeSpool, err := profile.NewSpoolDir("")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			removeSpool()
		}
	}()
	a.removeSpool = removeSpool
	a.profile, err = profile.New(profile.Config{
		Issuer:            cfg.Issuer,
		PasswordMinLength: cfg.PasswordMinLength,
		Pictures:          picture.Limits{MaxBytes: cfg.PictureMaxBytes, MaxSide: cfg.PictureMaxSide},
		Guard:             guard,
		Logger:            log,
		ObserveEvent:      a.metrics.AccountEvent,
		Now:               cfg.clock,
		SpoolDir:          spoolDir,
	}, profile.Deps{Accounts: a.accounts, Users: a.store, Tokens: a.oauth, Sessions: a.sessions, Pictures: a.pictures, Mailer: a.outbox, Limiter: a.limiter,
		Logins: a.oauth, BrowserSessions: a.sessions,
		Memory: a.memory, PictureDeletions: a.pictureDeletions, Passkeys: passkeys,
		Stats: a.store, Exports: a.store, Transactions: a.store})
	if err != nil {
		return nil, err
	}
	pg, err := pages.New(pages.Config{Issuer: cfg.Issuer, CSRFKey: csrfKey})
	if err != nil {
		return nil, err
	}
	var signinPasskeys signin.Passkeys
	if a.passkeys != nil {
		signinPasskeys = a.passkeys
	}
	a.signin, err = signin.New(signin.Config{
		FlowKey:          flowKey,
		Cookies:          session.Cookies{Secure: strings.HasPrefix(cfg.Issuer, "https://")},
		Guard:            guard,
		ObserveAuthorize: a.metrics.Authorize,
		ObserveLogin:     a.metrics.BrowserLogin,
		Logger:           log,
		Now:              cfg.clock,
	}, signin.Deps{OAuth: a.oauth, Accounts: a.accounts, Sessions: a.sessions, Consents: a.consents, Pages: pg,
		Recovery: a.profile, Registration: a.profile, Passkeys: signinPasskeys})
	if err != nil {
		return nil, err
	}
	a.account, err = accountpage.New(accountpage.Config{
		Issuer:       cfg.Issuer,
		Cookies:      session.Cookies{Secure: strings.HasPrefix(cfg.Issuer, "https://")},
		Guard:        guard,
		Logger:       log,
		Now:          cfg.clock,
		ObserveEvent: a.metrics.AccountEvent,
	}, accountpage.Deps{Passkeys: passkeys, Sessions: a.sessions, Accounts: a.accounts, Profile: a.profile, Pages: pg})
	if err != nil {
		return nil, err
	}
	a.metrics.WatchDB(a.db.SQL)
	a.metrics.WatchKeys(a.keys)
	a.metrics.WatchOutbox(a.outbox)
	return a, nil
}

// deletionOptions tune the picture deletion queue.
func deletionOptions(cfg config, log *slog.Logger) picture.DeletionOptions {
	o := cfg.pictureDeletions
	o.Now, o.Logger = cfg.clock, log
	return o
}

// pictureOptions are the picture store's settings.
func pictureOptions(cfg config) ([]picture.Option, error) {
	opts := cfg.pictureOptions
	if cfg.PicturesPublicURL != "" {
		opts = append(opts, picture.WithPublicEndpoint(cfg.PicturesPublicURL))
	}
	if cfg.PicturesSigningKey != "" {
		b, err := os.ReadFile(cfg.PicturesSigningKey)
		if err != nil {
			return nil, fmt.Errorf("IDP_PICTURES_SIGNING_KEY_FILE: %w", err)
		}
		var key struct {
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
		}
		if err := json.Unmarshal(b, &key); err != nil || key.ClientEmail == "" || key.PrivateKey == "" {
			return nil, errors.New("IDP_PICTURES_SIGNING_KEY_FILE: not a service-account JSON key (client_email, private_key)")
		}
		opts = append(opts, picture.WithSigningKey(key.ClientEmail, []byte(key.PrivateKey)))
	}
	return opts, nil
}

// newMailSender is SendGrid when a key is configured, else the mail.log of
// the data directory.
func newMailSender(cfg config) (mail.Sender, error) {
	if cfg.SendGridAPIKey == "" {
		return mail.NewLogFile(cfg.path("mail.log"))
	}
	from, err := mail.ParseAddress(cfg.MailFrom)
	if err != nil {
		return nil, fmt.Errorf("IDP_MAIL_FROM: %w", err)
	}
	return mail.NewSendGrid(cfg.SendGridAPIKey, from, cfg.sendGridOptions...), nil
}

func (a *app) Close() error {
	for _, c := range []any{a.pictures, a.mailer} {
		if c, ok := c.(io.Closer); ok {
			c.Close()
		}
	}
	if err := a.removeSpool(); err != nil {
		a.log.Warn("remove the upload spool", "err", err)
	}
	return a.db.Close()
}

// mounter is a feature that adds its routes to the public router.
type mounter interface {
	Mount(r chi.Router)
}

// mountFunc adapts a function to mounter, for the routes no package owns.
type mountFunc func(r chi.Router)

func (f mountFunc) Mount(r chi.Router) { f(r) }

// The directory store is found by its Mount method: a rename must not
// silently stop serving the pictures.
var _ mounter = (*picture.DirStore)(nil)

// features are what the public router serves, each mounting its own routes.
// A picture store that serves its files itself (the directory store) is one;
// one whose URLs point elsewhere (GCS) is not.
func (a *app) features() []mounter {
	fs := []mounter{a.oauth, a.signin, a.account, a.profile, a.keys, mountFunc(a.mountPages), mountFunc(a.mountHealth), mountFunc(mountOpenAPI)}
	if m, ok := a.pictures.(mounter); ok {
		fs = append(fs, m)
	}
	return fs
}

// handler is the public HTTP surface; opsHandler is the operations one.
func (a *app) handler() http.Handler {
	r := chi.NewRouter()
	r.Use(recoverer(a.log), requestID, a.clientIP.Middleware, accessLog(a.log, a.metrics), securityHeaders, hsts(a.cfg.Issuer), deadline(a.cfg.RequestTimeout))
	r.NotFound(unrouted(r, http.StatusNotFound))
	r.MethodNotAllowed(unrouted(r, http.StatusMethodNotAllowed))
	for _, f := range a.features() {
		f.Mount(r)
	}
	return r
}

// unrouted answers requests that no route takes (status 404 or 405) in
// the error format of the surface their path is under: RFC 9457 problems
// under /v1, plain text elsewhere. A 405 names the path's methods in Allow,
// as chi's own answer does.
func unrouted(routes chi.Routes, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusMethodNotAllowed {
			for _, m := range [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
				if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
					w.Header().Add("Allow", m)
				}
			}
		}
		if r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/") {
			profile.Unrouted(w, status)
			return
		}
		http.Error(w, strconv.Itoa(status)+" "+strings.ToLower(http.StatusText(status)), status)
	}
}

// mountPages adds the password-change redirect and the reset page it leads
// to by default.
func (a *app) mountPages(r chi.Router) {
	r.Get("/.well-known/change-password", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, a.cfg.ChangePasswordURL, http.StatusFound)
	})
	r.Get("/password-reset", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		io.WriteString(w, idp.PasswordResetPage())
	})
}

// mountHealth adds the probes, which the operations listener serves too.
func (a *app) mountHealth(r chi.Router) {
	r.Get("/healthz", handleHealthz)
	r.Get("/readyz", a.handleReady)
}

func mountOpenAPI(r chi.Router) {
	r.Method(http.MethodGet, "/openapi.yaml", idp.OpenAPIHandler())
}

func (a *app) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.db.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "readiness: database unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("database unreachable\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// sweep deletes what expires: token rows, ended rate-limit windows, stale
// login throttles, expired one-time codes (reset, verification). A pass
// that removed something is logged with what it took, so that its cost
// under load can be seen (and timed: make bench's scale mode reads it).
func (a *app) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			var attrs []any
			removed := 0
			for name, f := range map[string]func(context.Context) (int, error){
				"expired tokens":     a.oauth.DeleteExpiredTokens,
				"rate limit windows": a.limiter.DeleteExpired,
				"login throttles":    a.accounts.DeleteStaleThrottles,
				"one-time codes":     a.accounts.DeleteExpiredCodes,
				"browser sessions":   a.sessions.DeleteExpired,
				"passkey challenges": a.sweepPasskeyChallenges,
			} {
				n, err := f(ctx)
				if err != nil && ctx.Err() == nil {
					a.log.WarnContext(ctx, "sweep "+name, "err", err)
				}
				if n > 0 {
					removed += n
					attrs = append(attrs, strings.ReplaceAll(name, " ", "_"), n)
				}
			}
			if removed > 0 {
				a.log.InfoContext(ctx, "sweep", append(attrs, "removed", removed, "took", time.Since(start).String())...)
			}
		}
	}
}

func (a *app) sweepPasskeyChallenges(ctx context.Context) (int, error) {
	if a.passkeys == nil {
		return 0, nil
	}
	return a.passkeys.DeleteExpired(ctx)
}

// serve runs the HTTP server on ln and the background work (key rotation,
// token cleanup) until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish within the grace period, and
// stops the background work.
func (a *app) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		ConnState:         a.cfg.connState,
	}
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.keys.Run(bg) })
	wg.Go(func() { a.outbox.Run(bg) })
	wg.Go(func() { a.pictureDeletions.Run(bg) })
	wg.Go(func() { a.sweep(bg, a.cfg.SweepInterval) })

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String(), "issuer", a.cfg.Issuer)
	// Start-up is over: what only it needed can go (the hasher trims again
	// whenever logins stop).
	if a.cfg.trim != nil {
		trimMemory(a.cfg.trim, a.log)
	}

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		a.log.Info("shutting down", "grace", a.cfg.ShutdownGrace.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownGrace)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopBackground()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
