package picture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-chi/chi/v5"
)

// PathPrefix is where the directory store's Handler must be mounted, and
// what its URLs contain after the public base URL.
const PathPrefix = "/pictures/"

// DirStore keeps pictures as files in a local directory, the
// zero-configuration default, and serves them itself through Handler.
//
// A key "3f/3fa9…c1.jpg" is stored as the file dir/3f/3fa9…c1.jpg; the
// extension tells the content type, so no sidecar file is needed.
type DirStore struct {
	dir     string // absolute
	baseURL string // public base URL, no trailing slash
	logger  *slog.Logger
}

// NewDirStore returns a store in dir, which it creates (mode 0700) if
// needed. A relative dir is made absolute now, so a later change of working
// directory does not move the pictures. publicBaseURL is the service's
// issuer URL, under which Handler is mounted at PathPrefix.
func NewDirStore(dir, publicBaseURL string, opts ...Option) (*DirStore, error) {
	o := collect(opts)
	if dir == "" {
		return nil, errors.New("picture: no directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("picture: %w", err)
	}
	base, err := url.Parse(publicBaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("picture: public base URL %q: want an absolute http(s) URL", publicBaseURL)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("picture: %w", err)
	}
	return &DirStore{dir: abs, baseURL: strings.TrimSuffix(publicBaseURL, "/"), logger: o.logger}, nil
}

// Close does nothing; it is there so that every store is an io.Closer.
func (d *DirStore) Close() error { return nil }

// path is the file of a valid key. filepath.FromSlash keeps it right on
// systems whose separator is not "/".
func (d *DirStore) path(key string) string { return filepath.Join(d.dir, filepath.FromSlash(key)) }

// Put writes the file atomically, through a temporary file in the same
// directory and a rename, so a reader never sees half a picture and a crash
// leaves at most a stray temporary file. An existing file is left alone.
func (d *DirStore) Put(ctx context.Context, key string, img Image) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: put %q", ErrBadKey, key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("picture: put %s: %w", key, err)
	}
	name := d.path(key)
	if _, err := os.Stat(name); err == nil {
		return nil
	}
	if err := writeFileAtomic(name, img.Data); err != nil {
		return fmt.Errorf("%w: put %s: %w", ErrUnavailable, key, err)
	}
	return nil
}

func writeFileAtomic(name string, data []byte) (err error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	// Sync before the rename, or a crash could leave the new name pointing
	// at an empty file.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// Delete removes the file; a missing file is not an error. The two-character
// directory stays: there are at most 256 of them.
func (d *DirStore) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return fmt.Errorf("%w: delete %q", ErrBadKey, key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("picture: delete %s: %w", key, err)
	}
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: delete %s: %w", ErrUnavailable, key, err)
	}
	return nil
}

// URL returns publicBaseURL + PathPrefix + key. The URL does not expire: the
// key itself is the secret. It does not check that the file exists.
func (d *DirStore) URL(ctx context.Context, key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("%w: url %q", ErrBadKey, key)
	}
	return d.baseURL + PathPrefix + key, nil
}

// Mount adds GET and HEAD PathPrefix+key, served by Handler, to r.
func (d *DirStore) Mount(r chi.Router) {
	r.Method(http.MethodGet, PathPrefix+"*", d.Handler())
	r.Method(http.MethodHead, PathPrefix+"*", d.Handler())
}

// Handler serves GET and HEAD PathPrefix+key for the stored pictures; mount
// it at PathPrefix, without stripping the prefix. Anything that is not
// exactly a key, such as a path with "..", is 404 before the file system is
// touched.
func (d *DirStore) Handler() http.Handler {
	return http.HandlerFunc(d.serve)
}

func (d *DirStore) serve(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || !ValidKey(key) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		d.logger.ErrorContext(r.Context(), "picture: open stored file", "key", key, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		d.logger.ErrorContext(r.Context(), "picture: stat stored file", "key", key, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypeOf(key))
	h.Set("Cache-Control", cacheControl)
	// A key never names other bytes, so it is a strong validator as is.
	h.Set("ETag", `"`+key[3:3+hashLen]+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	// The pictures come from the issuer's own origin: should a file ever be
	// opened as a document, it may run nothing and load nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// ServeContent answers If-None-Match (304), Range and HEAD.
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
