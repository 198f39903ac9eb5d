package picture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"cloud.google.com/go/storage"
)

// ErrUnavailable wraps every failure of a Store's backend (an unreachable or
// refusing bucket, a full or read-only disk): the caller answers 503. The
// backend's own error stays in the chain, so errors.Is(err,
// context.Canceled) and the like still work.
var ErrUnavailable = errors.New("picture: storage unavailable")

// Store keeps processed pictures under the keys that NewKey makes.
type Store interface {
	// Put stores img under key, a fresh key from NewKey. Storing the same
	// key again (a retry) is harmless and leaves the first copy in place.
	Put(ctx context.Context, key string, img Image) error
	// Delete removes the picture; deleting a missing one is not an error.
	// Each key belongs to the one upload that made it, so its owner may
	// delete it once no row names it.
	Delete(ctx context.Context, key string) error
	// URL returns an absolute URL from which a plain GET downloads the
	// picture for at least 10 minutes from now.
	URL(ctx context.Context, key string) (string, error)
}

// cacheControl marks stored pictures immutable: a key never names other
// bytes, so browsers and CDNs may keep them for a year without revalidating.
const cacheControl = "public, max-age=31536000, immutable"

// Option configures Open and the stores' constructors. Options that do not
// apply to the chosen store are ignored.
type Option func(*options)

type options struct {
	client     *storage.Client
	accessID   string
	privateKey []byte
	endpoint   string
	publicURL  string
	logger     *slog.Logger
}

// WithGCSClient makes the GCS store use c instead of creating its own client
// (tests, or a service that shares one client). The store does not close it.
func WithGCSClient(c *storage.Client) Option {
	return func(o *options) { o.client = c }
}

// WithSigningKey makes the GCS store sign URLs with a service account's key
// directly: googleAccessID is the account's e-mail address and pemKey its
// PEM private key (the "private_key" of a JSON key file). Without it the
// storage client finds the service account of the environment and signs
// with its key, or through the IAM signBlob API; that is the production
// setup, and needs no key file on disk.
func WithSigningKey(googleAccessID string, pemKey []byte) Option {
	return func(o *options) {
		o.accessID = googleAccessID
		o.privateKey = pemKey
	}
}

// WithEndpoint points the GCS store at a storage server other than Google's,
// such as fake-gcs-server: endpoint is its base URL ("http://127.0.0.1:4443").
// Signed URLs name that host and scheme. A client the store creates itself
// sends no credentials to a plain-http endpoint. STORAGE_EMULATOR_HOST does
// the same without an option.
func WithEndpoint(endpoint string) Option {
	return func(o *options) { o.endpoint = strings.TrimSuffix(endpoint, "/") }
}

// WithPublicEndpoint sets the scheme and host that signed URLs name, when
// clients reach the storage server by another address than the service does
// (an emulator in a compose network: the service talks to gcs:4443, a phone
// or curl on the host downloads from localhost:4443). Requests of the
// service itself are unaffected.
func WithPublicEndpoint(endpoint string) Option {
	return func(o *options) { o.publicURL = strings.TrimSuffix(endpoint, "/") }
}

// WithLogger sets where the directory store's HTTP handler logs failures to
// read a stored file (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// Open returns the Store that rawURL names:
//
//	gs://bucket/optional/prefix   Google Cloud Storage (a *GCSStore)
//	file:///absolute/dir          a local directory (a *DirStore)
//	/absolute/dir or relative/dir a local directory too
//
// publicBaseURL is the service's own issuer URL; the directory store's URLs
// start with it, and its Handler must be mounted at PathPrefix. The GCS store
// hands out signed URLs on storage.googleapis.com instead.
//
// Both stores implement io.Closer; close the store when the server stops.
func Open(ctx context.Context, rawURL, publicBaseURL string, opts ...Option) (Store, error) {
	switch {
	case rawURL == "":
		return nil, errors.New("picture: no store URL")
	case strings.HasPrefix(rawURL, "gs:"):
		bucket, prefix, err := parseGS(rawURL)
		if err != nil {
			return nil, err
		}
		return NewGCSStore(ctx, bucket, prefix, opts...)
	case strings.HasPrefix(rawURL, "file:"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("picture: bad store URL: %w", err)
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("picture: store URL %q: want file:///absolute/dir", rawURL)
		}
		return NewDirStore(u.Path, publicBaseURL, opts...)
	case strings.Contains(rawURL, "://"):
		scheme, _, _ := strings.Cut(rawURL, "://")
		return nil, fmt.Errorf("picture: unsupported store scheme %q (want gs or file)", scheme)
	default:
		return NewDirStore(rawURL, publicBaseURL, opts...)
	}
}

// parseGS splits gs://bucket/optional/prefix.
func parseGS(rawURL string) (bucket, prefix string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("picture: bad store URL: %w", err)
	}
	if u.Scheme != "gs" || u.Host == "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("picture: store URL %q: want gs://bucket/optional/prefix", rawURL)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}
