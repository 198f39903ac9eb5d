package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"idp/keys"
	"idp/mail"
	"idp/picture"
	"idp/ratelimit"
)

// config is every setting of idp. Each has an IDP_… environment variable
// and a flag of the same meaning (the flag wins); see settings.
type config struct {
	HTTPAddr    string
	OpsAddr     string
	OpsProfiler bool
	Issuer      string
	DataDir     string
	DatabaseURL string
	LogLevel    slog.Level

	KeyEncryptionKey    string
	RefreshTokenSecrets string

	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	IDTokenTTL      time.Duration
	// RefreshReuseLeeway: see oauth.Config.
	RefreshReuseLeeway time.Duration
	// SessionTTL and SessionIdleTTL bound a browser session: from its
	// login, and since it was last used.
	SessionTTL     time.Duration
	SessionIdleTTL time.Duration

	KeySize            int
	KeyRotationPeriod  time.Duration
	KeyPublishLead     time.Duration
	KeyRefreshInterval time.Duration

	Argon2MemoryKiB   uint
	Argon2Iterations  uint
	Argon2Parallelism uint
	HashConcurrency   int
	HashQueueTimeout  time.Duration

	ShutdownGrace  time.Duration
	RequestTimeout time.Duration
	// SweepInterval is how often expired rows (tokens, sessions, codes,
	// rate-limit windows) are deleted.
	SweepInterval time.Duration

	PicturesURL        string
	PicturesPublicURL  string
	PicturesSigningKey string
	PictureMaxBytes    int64
	PictureMaxSide     int
	PasswordMinLength  int

	SendGridAPIKey    string
	MailFrom          string
	RateLimitPerIP    int
	TrustedProxies    string
	ChangePasswordURL string

	// WebAuthnOrigins are origins besides the issuer's that passkey
	// ceremonies may come from (IDP_WEBAUTHN_ORIGINS); check parses them
	// into webauthnOrigins.
	WebAuthnOrigins string
	webauthnOrigins []string

	// clock is the token service's clock and keyClock the signing keys';
	// nil means time.Now. Tests set them to see tokens expire and keys
	// rotate without waiting.
	clock, keyClock func() time.Time
	// trim gives back unused memory when idle (residency.Trim): set by
	// main for the process it runs, nil in tests, whose servers come and
	// go by the hundred within one binary and would page it out each time.
	trim func() error
	// pictureOptions configure the picture store; tests point it at an
	// in-process fake-gcs-server.
	pictureOptions []picture.Option
	// sendGridOptions and outbox tune mail delivery; tests point SendGrid
	// at an httptest server and shorten the retry schedule.
	sendGridOptions []mail.SendGridOption
	outbox          mail.Options
	// pictureDeletions tunes the retry of picture deletions (tests).
	pictureDeletions picture.DeletionOptions
	// connState is the HTTP server's ConnState hook; tests use it to know a
	// request is in flight.
	connState func(net.Conn, http.ConnState)
	// The typed values check produces from the settings, which newApp uses
	// as they are: the client-address resolver of IDP_TRUSTED_PROXIES, the
	// secrets of IDP_REFRESH_TOKEN_SECRETS (nil in the embedded default,
	// which generates one) and the key of IDP_KEY_ENCRYPTION_KEY (nil when
	// not given: the embedded default generates one).
	clientIP       ratelimit.ClientIP
	refreshSecrets [][]byte
	kek            []byte

	// derivedIssuer and derivedChangePasswordURL record that check filled
	// these in from the listening address, so that bound can correct them
	// once a port 0 has become a real one.
	derivedIssuer, derivedChangePasswordURL bool
}

// setting binds one configuration value to its environment variable and flag.
type setting struct {
	env, flag, usage string
	value            flag.Value
}

// settings lists every setting; the order is the order of `idp -h`.
func (c *config) settings() []setting {
	return []setting{
		{"IDP_HTTP_ADDR", "http-addr", "address to listen on (default localhost:8080, loopback only, in the embedded default; :8080 in production mode)", (*stringValue)(&c.HTTPAddr)},
		{"IDP_OPS_ADDR", "ops-addr", "address of the operations listener: /metrics, /healthz, /readyz and, with IDP_OPS_PROFILER, the profiler (empty: none); keep it off public networks", (*stringValue)(&c.OpsAddr)},
		{"IDP_OPS_PROFILER", "ops-profiler", "serve the Go profiler at /debug/pprof/ on the operations listener", (*boolValue)(&c.OpsProfiler)},
		{"IDP_ISSUER", "issuer", "public base URL of the service, no trailing slash (required with IDP_DATABASE_URL; default http://localhost:<port of IDP_HTTP_ADDR> in the embedded default)", (*stringValue)(&c.Issuer)},
		{"IDP_DATA_DIR", "data-dir", "directory of the embedded default: SQLite database, generated secrets", (*stringValue)(&c.DataDir)},
		{"IDP_DATABASE_URL", "database-url", "mysql://user:password@host:3306/db (or sqlite:/path, production mode for one process); empty runs the embedded SQLite default", (*stringValue)(&c.DatabaseURL)},
		{"IDP_LOG_LEVEL", "log-level", "debug, info, warn or error", (*levelValue)(&c.LogLevel)},
		{"IDP_KEY_ENCRYPTION_KEY", "key-encryption-key", "32 bytes, base64 or hex, that encrypt the signing keys at rest (required with IDP_DATABASE_URL)", (*stringValue)(&c.KeyEncryptionKey)},
		{"IDP_REFRESH_TOKEN_SECRETS", "refresh-token-secrets", "comma-separated secrets of at least 32 characters behind refresh-token signatures; the first signs, all are accepted (required with IDP_DATABASE_URL)", (*stringValue)(&c.RefreshTokenSecrets)},
		{"IDP_ACCESS_TOKEN_TTL", "access-token-ttl", "lifetime of access tokens", (*durationValue)(&c.AccessTokenTTL)},
		{"IDP_REFRESH_TOKEN_TTL", "refresh-token-ttl", "lifetime of refresh tokens (each refresh starts a new one)", (*durationValue)(&c.RefreshTokenTTL)},
		{"IDP_ID_TOKEN_TTL", "id-token-ttl", "lifetime of ID tokens", (*durationValue)(&c.IDTokenTTL)},
		{"IDP_REFRESH_REUSE_LEEWAY", "refresh-reuse-leeway", "how long after a refresh the same client may present the used refresh token again and get the same new one (a retry after a lost answer); 0 turns it off", (*durationValue)(&c.RefreshReuseLeeway)},
		{"IDP_SESSION_TTL", "session-ttl", "longest life of a browser sign-in session, from its login", (*durationValue)(&c.SessionTTL)},
		{"IDP_SESSION_IDLE_TTL", "session-idle-ttl", "a browser sign-in session ends when unused this long", (*durationValue)(&c.SessionIdleTTL)},
		{"IDP_KEY_SIZE", "key-size", "RSA signing key size in bits: 2048 or 3072", (*intValue)(&c.KeySize)},
		{"IDP_KEY_ROTATION_PERIOD", "key-rotation-period", "how long a signing key signs before the next one takes over", (*durationValue)(&c.KeyRotationPeriod)},
		{"IDP_KEY_PUBLISH_LEAD", "key-publish-lead", "how long the next signing key is published in the JWKS before it signs", (*durationValue)(&c.KeyPublishLead)},
		{"IDP_KEY_REFRESH_INTERVAL", "key-refresh-interval", "how often each process re-reads the signing keys and rotates when due", (*durationValue)(&c.KeyRefreshInterval)},
		{"IDP_ARGON2_MEMORY_KIB", "argon2-memory-kib", "argon2id memory per password hash, in KiB", (*uintValue)(&c.Argon2MemoryKiB)},
		{"IDP_ARGON2_ITERATIONS", "argon2-iterations", "argon2id passes", (*uintValue)(&c.Argon2Iterations)},
		{"IDP_ARGON2_PARALLELISM", "argon2-parallelism", "argon2id lanes", (*uintValue)(&c.Argon2Parallelism)},
		{"IDP_HASH_CONCURRENCY", "hash-concurrency", "password hashes computed at once (0: one per CPU); bounds their memory", (*intValue)(&c.HashConcurrency)},
		{"IDP_HASH_QUEUE_TIMEOUT", "hash-queue-timeout", "how long a login waits for a hashing slot before 503", (*durationValue)(&c.HashQueueTimeout)},
		{"IDP_SHUTDOWN_GRACE", "shutdown-grace", "how long in-flight requests may take to finish on SIGTERM", (*durationValue)(&c.ShutdownGrace)},
		{"IDP_REQUEST_TIMEOUT", "request-timeout", "deadline of one request's work (database, storage); past it the answer is 503", (*durationValue)(&c.RequestTimeout)},
		{"IDP_SWEEP_INTERVAL", "sweep-interval", "how often each process deletes expired tokens, sessions, one-time codes and rate-limit windows", (*durationValue)(&c.SweepInterval)},
		{"IDP_PICTURES_URL", "pictures-url", "where pictures are stored: gs://bucket/prefix, or a directory (default <data-dir>/pictures; required with IDP_DATABASE_URL)", (*stringValue)(&c.PicturesURL)},
		{"IDP_PICTURES_PUBLIC_URL", "pictures-public-url", "scheme://host[:port] that signed picture URLs name, when clients reach the storage server by another address than idp (a GCS emulator in compose)", (*stringValue)(&c.PicturesPublicURL)},
		{"IDP_PICTURES_SIGNING_KEY_FILE", "pictures-signing-key-file", "service-account JSON key file to sign picture URLs with; empty signs as the environment's service account (IAM signBlob)", (*stringValue)(&c.PicturesSigningKey)},
		{"IDP_PICTURE_MAX_BYTES", "picture-max-bytes", "largest picture upload, in bytes", (*int64Value)(&c.PictureMaxBytes)},
		{"IDP_PICTURE_MAX_SIDE", "picture-max-side", "largest picture width or height accepted, in pixels", (*intValue)(&c.PictureMaxSide)},
		{"IDP_PASSWORD_MIN_LENGTH", "password-min-length", "shortest password accepted, in characters (at least 8)", (*intValue)(&c.PasswordMinLength)},
		{"IDP_SENDGRID_API_KEY", "sendgrid-api-key", "SendGrid API key; empty appends mail to <data-dir>/mail.log instead of sending it", (*stringValue)(&c.SendGridAPIKey)},
		{"IDP_MAIL_FROM", "mail-from", `sender of the service's mail, "Name <address>" (required with IDP_SENDGRID_API_KEY)`, (*stringValue)(&c.MailFrom)},
		{"IDP_RATE_LIMIT_PER_IP", "rate-limit-per-ip", "requests per minute per client address on each endpoint that can be guessed at (0 turns the limits off)", (*intValue)(&c.RateLimitPerIP)},
		{"IDP_TRUSTED_PROXIES", "trusted-proxies", "comma-separated addresses or networks of proxies whose X-Forwarded-For is believed", (*stringValue)(&c.TrustedProxies)},
		{"IDP_WEBAUTHN_ORIGINS", "webauthn-origins", "comma-separated origins besides the issuer's that passkeys may be used from: https://host[:port], or an app's android:apk-key-hash:…", (*stringValue)(&c.WebAuthnOrigins)},
		{"IDP_CHANGE_PASSWORD_URL", "change-password-url", "where /.well-known/change-password redirects (default <issuer>/account#password, the account page)", (*stringValue)(&c.ChangePasswordURL)},
	}
}

func defaultConfig() config {
	return config{
		OpsAddr:            "127.0.0.1:9090",
		DataDir:            "data",
		LogLevel:           slog.LevelInfo,
		AccessTokenTTL:     15 * time.Minute,
		RefreshTokenTTL:    30 * 24 * time.Hour,
		IDTokenTTL:         time.Hour,
		RefreshReuseLeeway: 5 * time.Second,
		SessionTTL:         14 * 24 * time.Hour,
		SessionIdleTTL:     3 * 24 * time.Hour,
		KeySize:            2048,
		KeyRotationPeriod:  30 * 24 * time.Hour,
		KeyPublishLead:     24 * time.Hour,
		KeyRefreshInterval: time.Minute,
		HashQueueTimeout:   2 * time.Second,
		ShutdownGrace:      20 * time.Second,
		RequestTimeout:     15 * time.Second,
		SweepInterval:      10 * time.Minute,
		PictureMaxBytes:    5 << 20,
		PictureMaxSide:     4096,
		PasswordMinLength:  12,
		RateLimitPerIP:     300,
		MailFrom:           "idp <no-reply@localhost>",
	}
}

// The listening addresses when IDP_HTTP_ADDR is not set: the embedded
// default is for the machine it runs on, so loopback only; production mode
// (and the container image, which sets it) listens on every interface.
const (
	embeddedHTTPAddr   = "localhost:8080"
	productionHTTPAddr = ":8080"
)

// emptyIsAValue reports whether a setting's empty value differs from its
// default: IDP_OPS_ADDR= turns the operations listener off.
func emptyIsAValue(env string) bool { return env == "IDP_OPS_ADDR" }

// lookupEnv reads an environment variable as os.LookupEnv does: a variable
// set to the empty string (IDP_OPS_ADDR=) is not an unset one.
type lookupEnv func(string) (string, bool)

// parseConfig reads the environment, then the flags of fs. Errors name the
// variable or flag at fault in one line.
func parseConfig(fs *flag.FlagSet, args []string, lookup lookupEnv) (config, error) {
	c := defaultConfig()
	settings := c.settings()
	// The flags are registered before the environment is read: a flag's
	// usage shows the value it held when registered as its default, and
	// that must be the built-in one, never a secret from the environment
	// (a mistyped flag prints the usage to the logs).
	for _, s := range settings {
		fs.Var(s.value, s.flag, s.usage+" ("+s.env+")")
	}
	// Argon2 defaults come from the password package; zero means "use them".
	// An empty variable counts as unset (compose's ${X:-} passes empty
	// strings through), except where empty is a value of its own.
	for _, s := range settings {
		if v, ok := lookup(s.env); ok && (v != "" || emptyIsAValue(s.env)) {
			if err := s.value.Set(v); err != nil {
				return c, fmt.Errorf("%s: %v", s.env, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.check()
}

// embedded reports whether this is the zero-configuration default: no
// database URL, so SQLite and generated secrets under the data directory.
func (c *config) embedded() bool { return c.DatabaseURL == "" }

// check validates the settings and fills in what the embedded default
// derives. A production setup (IDP_DATABASE_URL set) must name its issuer and
// secrets: generating them would silently differ between replicas.
func (c *config) check() error {
	if c.embedded() {
		if c.HTTPAddr == "" {
			c.HTTPAddr = embeddedHTTPAddr
		}
		if c.Issuer == "" {
			_, port, err := net.SplitHostPort(c.HTTPAddr)
			if err != nil || port == "" {
				return fmt.Errorf("IDP_HTTP_ADDR: %q is not host:port", c.HTTPAddr)
			}
			c.Issuer = "http://localhost:" + port
			c.derivedIssuer = true
		}
		if c.PicturesURL == "" {
			c.PicturesURL = c.path("pictures")
		}
	} else {
		if c.HTTPAddr == "" {
			c.HTTPAddr = productionHTTPAddr
		}
		for _, req := range []struct{ v, env string }{
			{c.Issuer, "IDP_ISSUER"},
			{c.KeyEncryptionKey, "IDP_KEY_ENCRYPTION_KEY"},
			{c.RefreshTokenSecrets, "IDP_REFRESH_TOKEN_SECRETS"},
			{c.PicturesURL, "IDP_PICTURES_URL"},
		} {
			if req.v == "" {
				return fmt.Errorf("%s is required when IDP_DATABASE_URL is set", req.env)
			}
		}
		if !strings.HasPrefix(c.DatabaseURL, "mysql://") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
			!strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite:") {
			return errors.New("IDP_DATABASE_URL: want mysql://user:password@host:3306/database, postgres://user:password@host:5432/database (or sqlite:/path)")
		}
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("IDP_ISSUER: %q is not an http(s) URL without query or fragment", c.Issuer)
	}
	for _, d := range []struct {
		v   time.Duration
		env string
	}{
		{c.AccessTokenTTL, "IDP_ACCESS_TOKEN_TTL"}, {c.RefreshTokenTTL, "IDP_REFRESH_TOKEN_TTL"},
		{c.IDTokenTTL, "IDP_ID_TOKEN_TTL"}, {c.KeyRotationPeriod, "IDP_KEY_ROTATION_PERIOD"},
		{c.KeyPublishLead, "IDP_KEY_PUBLISH_LEAD"}, {c.KeyRefreshInterval, "IDP_KEY_REFRESH_INTERVAL"},
		{c.HashQueueTimeout, "IDP_HASH_QUEUE_TIMEOUT"}, {c.RequestTimeout, "IDP_REQUEST_TIMEOUT"},
		{c.SessionTTL, "IDP_SESSION_TTL"}, {c.SessionIdleTTL, "IDP_SESSION_IDLE_TTL"},
		{c.SweepInterval, "IDP_SWEEP_INTERVAL"},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive", d.env)
		}
	}
	if c.RefreshReuseLeeway < 0 {
		return errors.New("IDP_REFRESH_REUSE_LEEWAY must not be negative")
	}
	if c.RefreshReuseLeeway >= c.RefreshTokenTTL {
		return errors.New("IDP_REFRESH_REUSE_LEEWAY must be shorter than IDP_REFRESH_TOKEN_TTL")
	}
	if c.ShutdownGrace < 0 {
		return errors.New("IDP_SHUTDOWN_GRACE must not be negative")
	}
	if c.KeySize != 2048 && c.KeySize != 3072 {
		return fmt.Errorf("IDP_KEY_SIZE: %d is not 2048 or 3072", c.KeySize)
	}
	if err := keys.ValidateSchedule(c.KeyRotationPeriod, c.KeyPublishLead, c.KeyRefreshInterval); err != nil {
		return fmt.Errorf("IDP_KEY_PUBLISH_LEAD (with IDP_KEY_ROTATION_PERIOD and IDP_KEY_REFRESH_INTERVAL): %w", err)
	}
	if c.PictureMaxBytes <= 0 || c.PictureMaxSide <= 0 {
		return errors.New("IDP_PICTURE_MAX_BYTES and IDP_PICTURE_MAX_SIDE must be positive")
	}
	if c.PasswordMinLength < 8 || c.PasswordMinLength > 128 {
		return fmt.Errorf("IDP_PASSWORD_MIN_LENGTH: %d is not between 8 and 128", c.PasswordMinLength)
	}
	if c.RateLimitPerIP < 0 {
		return errors.New("IDP_RATE_LIMIT_PER_IP must not be negative")
	}
	var err error
	if c.clientIP, err = ratelimit.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("IDP_TRUSTED_PROXIES: %w", err)
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		return fmt.Errorf("IDP_MAIL_FROM: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("IDP_HTTP_ADDR: %q is not host:port", c.HTTPAddr)
	}
	if c.OpsAddr != "" {
		if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
			return fmt.Errorf("IDP_OPS_ADDR: %q is not host:port", c.OpsAddr)
		}
	} else if c.OpsProfiler {
		return errors.New("IDP_OPS_PROFILER needs IDP_OPS_ADDR: the profiler is served on the operations listener only")
	}
	if c.ChangePasswordURL == "" {
		c.ChangePasswordURL = c.Issuer + "/account#password"
		c.derivedChangePasswordURL = true
	} else if u, err := url.Parse(c.ChangePasswordURL); err != nil || !u.IsAbs() {
		return fmt.Errorf("IDP_CHANGE_PASSWORD_URL: %q is not an absolute URL", c.ChangePasswordURL)
	}
	if c.HashConcurrency < 0 {
		return errors.New("IDP_HASH_CONCURRENCY must not be negative")
	}
	if c.webauthnOrigins, err = parseWebAuthnOrigins(c.WebAuthnOrigins); err != nil {
		return err
	}
	if c.refreshSecrets, err = parseRefreshSecrets(c.RefreshTokenSecrets); err != nil {
		return err
	}
	c.kek = nil
	if c.KeyEncryptionKey != "" {
		if c.kek, err = keys.ParseKEK(c.KeyEncryptionKey); err != nil {
			return fmt.Errorf("IDP_KEY_ENCRYPTION_KEY: %w", err)
		}
	}
	return nil
}

// parseWebAuthnOrigins splits IDP_WEBAUTHN_ORIGINS: each an http(s)
// origin (scheme and host, no path) or an Android app's
// android:apk-key-hash:<base64url SHA-256 of its signing certificate>.
func parseWebAuthnOrigins(v string) ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if h, ok := strings.CutPrefix(o, "android:apk-key-hash:"); ok {
			if h == "" || strings.Trim(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
				return nil, fmt.Errorf("IDP_WEBAUTHN_ORIGINS: %q: the key hash must be base64url", o)
			}
		} else if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("IDP_WEBAUTHN_ORIGINS: %q is not an origin (https://host[:port] or android:apk-key-hash:…)", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// parseRefreshSecrets splits IDP_REFRESH_TOKEN_SECRETS; empty in the embedded
// default, where the secret is generated into the data directory.
func parseRefreshSecrets(v string) ([][]byte, error) {
	if v == "" {
		return nil, nil
	}
	var out [][]byte
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if len(s) < 32 {
			return nil, errors.New("IDP_REFRESH_TOKEN_SECRETS: every secret must be at least 32 characters")
		}
		out = append(out, []byte(s))
	}
	return out, nil
}

func (c *config) path(name string) string { return filepath.Join(c.DataDir, name) }

// bound corrects what check derived from IDP_HTTP_ADDR once the server
// listens at addr: with port 0 the issuer names the port actually chosen.
func (c *config) bound(addr net.Addr) {
	if !c.derivedIssuer {
		return
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return
	}
	c.Issuer = "http://localhost:" + strconv.Itoa(tcp.Port)
	if c.derivedChangePasswordURL {
		c.ChangePasswordURL = c.Issuer + "/account#password"
	}
}

// envNames lists every environment variable idp reads.
func envNames() []string {
	var c config
	var names []string
	for _, s := range c.settings() {
		names = append(names, s.env)
	}
	slices.Sort(names)
	return names
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 15m or 720h", s)
	}
	*v = durationValue(d)
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = int64Value(n)
	return nil
}

type uintValue uint

func (v *uintValue) String() string { return strconv.FormatUint(uint64(*v), 10) }
func (v *uintValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = uintValue(n)
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v = boolValue(b)
	return nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return slog.Level(*v).String() }
func (v *levelValue) Set(s string) error {
	return (*slog.Level)(v).UnmarshalText([]byte(s))
}

// secretFile reads a generated secret of the embedded default, creating it
// with mode 0600 on first start. The file appears complete or not at all
// (written aside, then linked into place), so two processes starting at once
// agree on one secret.
func secretFile(path string, generate func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	v := generate()
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
		return secretFile(path, generate) // another process won
	} else if err != nil {
		return "", err
	}
	return v, nil
}
