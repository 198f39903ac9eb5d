package picture

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

const (
	// signedURLLifetime is how long a signed URL works. The contract
	// promises 10 minutes after the profile was read; an hour leaves room
	// for a client that reads the profile and fetches the picture later,
	// and for reusing one URL for a while.
	signedURLLifetime = time.Hour
	// signedURLReuse is how long one signed URL is handed out again. Reuse
	// lets browsers and apps cache the picture under a stable URL and saves
	// a signBlob call per profile read; every URL handed out still has at
	// least signedURLLifetime-signedURLReuse to live.
	signedURLReuse = 30 * time.Minute
	// urlCacheMax bounds the memory the reuse costs (about 1 KiB a URL).
	urlCacheMax = 10_000
)

// GCSStore keeps pictures in a Google Cloud Storage bucket and hands out V4
// signed URLs, so the bucket itself stays private.
type GCSStore struct {
	client    *storage.Client
	ownClient bool
	bucket    *storage.BucketHandle
	prefix    string                   // "" or "some/prefix/"
	sign      storage.SignedURLOptions // the fixed part of every signing
	urls      urlCache
}

// NewGCSStore returns a store for objects under prefix in bucket. It creates
// a storage client unless WithGCSClient supplies one; the client finds
// credentials the usual way (the service account of the environment) and
// honours STORAGE_EMULATOR_HOST. It does not contact the bucket, so the
// service starts even while storage is down.
func NewGCSStore(ctx context.Context, bucket, prefix string, opts ...Option) (*GCSStore, error) {
	o := collect(opts)
	if bucket == "" {
		return nil, errors.New("picture: no bucket name")
	}
	s := &GCSStore{client: o.client}
	s.sign = storage.SignedURLOptions{GoogleAccessID: o.accessID, PrivateKey: o.privateKey}
	if o.endpoint != "" {
		u, err := url.Parse(o.endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("picture: storage endpoint %q: want http(s)://host[:port]", o.endpoint)
		}
		s.sign.Hostname = u.Host
		s.sign.Insecure = u.Scheme == "http"
	} else if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" {
		// The client takes the emulator's host from the variable by itself
		// (and so does SignedURL); only the scheme is left to us. Like the
		// client, a bare host:port means plain http.
		s.sign.Insecure = !strings.HasPrefix(host, "https://")
		if s.sign.PrivateKey == nil {
			// The emulator has no service account to sign with, and does
			// not check signatures: a throwaway key makes URLs it serves.
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, err
			}
			der, _ := x509.MarshalPKCS8PrivateKey(key)
			s.sign.GoogleAccessID = "emulator@localhost"
			s.sign.PrivateKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
	}
	if o.publicURL != "" {
		u, err := url.Parse(o.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("picture: public endpoint %q: want http(s)://host[:port]", o.publicURL)
		}
		s.sign.Hostname = u.Host
		s.sign.Insecure = u.Scheme == "http"
	}
	if s.client == nil {
		var copts []option.ClientOption
		if o.endpoint != "" {
			copts = append(copts, option.WithEndpoint(o.endpoint+"/storage/v1/"))
			if s.sign.Insecure {
				copts = append(copts, option.WithoutAuthentication())
			}
		}
		c, err := storage.NewClient(ctx, copts...)
		if err != nil {
			return nil, fmt.Errorf("picture: storage client: %w", err)
		}
		s.client, s.ownClient = c, true
	}
	s.bucket = s.client.Bucket(bucket)
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		s.prefix = prefix + "/"
	}
	return s, nil
}

// Close releases the storage client if the store created it.
func (s *GCSStore) Close() error {
	if s.ownClient {
		return s.client.Close()
	}
	return nil
}

func (s *GCSStore) object(key string) string { return s.prefix + key }

// maxAttempts bounds the client's retries, which by default go on until the
// context ends: with storage down, a request should get its 503 within a
// second or two, not hang until the HTTP server's timeout.
const maxAttempts = 3

func retry(policy storage.RetryPolicy) []storage.RetryOption {
	return []storage.RetryOption{
		storage.WithPolicy(policy),
		storage.WithMaxAttempts(maxAttempts),
		storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3}),
	}
}

// Put uploads the picture with its content type and an immutable
// Cache-Control. The upload is conditional on the object not existing yet:
// that makes it safe to retry, and an object that is already there (an
// earlier attempt of this Put, keys being fresh per upload) counts as
// success.
func (s *GCSStore) Put(ctx context.Context, key string, img Image) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: put %q", ErrBadKey, key)
	}
	// Uploads ignore WithMaxAttempts (they retry until the context ends), so
	// the error function counts the attempts of this one upload itself.
	attempts := 0
	shouldRetry := func(err error) bool {
		attempts++
		return attempts < maxAttempts && storage.ShouldRetry(err)
	}
	obj := s.bucket.Object(s.object(key)).
		If(storage.Conditions{DoesNotExist: true}).
		Retryer(append(retry(storage.RetryIdempotent), storage.WithErrorFunc(shouldRetry))...)
	// Cancelling the writer's context is the documented way to abandon an
	// upload, so a failed Write leaves no partial object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ContentType = img.ContentType
	w.CacheControl = cacheControl
	// The default 16 MiB buffer per upload is far more than a picture needs;
	// a single chunk just larger than the data still allows retries.
	w.ChunkSize = (len(img.Data)/googleapi.MinUploadChunkSize + 1) * googleapi.MinUploadChunkSize
	_, err := w.Write(img.Data)
	if err != nil {
		cancel()
		_ = w.Close()
	} else {
		err = w.Close()
	}
	var gerr *googleapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed:
		return nil // already stored
	default:
		return fmt.Errorf("%w: put %s: %w", ErrUnavailable, key, err)
	}
}

// Delete removes the object. Deleting is retried even without a
// precondition: a key is never reused, so a second delete can only find it
// gone.
func (s *GCSStore) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: delete %q", ErrBadKey, key)
	}
	s.urls.forget(key)
	err := s.bucket.Object(s.object(key)).Retryer(retry(storage.RetryAlways)...).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w: delete %s: %w", ErrUnavailable, key, err)
	}
	return nil
}

// URL returns a V4 signed GET URL valid for an hour; the same URL is
// returned again for up to half an hour. It does not check that the object
// exists.
func (s *GCSStore) URL(ctx context.Context, key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("%w: url %q", ErrBadKey, key)
	}
	now := time.Now()
	if u, ok := s.urls.get(key, now); ok {
		return u, nil
	}
	opts := s.sign
	opts.Scheme = storage.SigningSchemeV4
	opts.Method = http.MethodGet
	opts.Expires = now.Add(signedURLLifetime)
	u, err := s.bucket.SignedURL(s.object(key), &opts)
	if err != nil {
		// Signing fails when no key is configured or signBlob is
		// unreachable: either way the picture cannot be offered now.
		return "", fmt.Errorf("%w: sign url for %s: %w", ErrUnavailable, key, err)
	}
	s.urls.put(key, u, now)
	return u, nil
}

// urlCache remembers signed URLs for reuse. Its zero value is ready.
type urlCache struct {
	mu sync.Mutex
	m  map[string]signedURL
}

type signedURL struct {
	url    string
	signed time.Time
}

func (c *urlCache) get(key string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.Sub(e.signed) >= signedURLReuse || now.Before(e.signed) {
		return "", false
	}
	return e.url, true
}

func (c *urlCache) put(key, u string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]signedURL)
	}
	if len(c.m) >= urlCacheMax {
		for k, e := range c.m {
			if now.Sub(e.signed) >= signedURLReuse {
				delete(c.m, k)
			}
		}
		if len(c.m) >= urlCacheMax {
			clear(c.m) // crude, but bounded, and only costs re-signing
		}
	}
	c.m[key] = signedURL{url: u, signed: now}
}

func (c *urlCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
