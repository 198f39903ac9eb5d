package picture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newDirStore(t *testing.T) (*DirStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pictures")
	d, err := NewDirStore(dir, "http://localhost:8080/")
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

func testImage(t *testing.T) (Image, string) {
	t.Helper()
	img, err := Process(bytes.NewReader(encodePNG(t, halves(20, 10, red, blue))), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return img, NewKey(img.ContentType)
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	d, dir := newDirStore(t)
	img, key := testImage(t)

	if err := d.Put(ctx, key, img); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key, img); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	name := filepath.Join(dir, filepath.FromSlash(key))
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(name): 0o700, name: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the picture (no temporary files)", len(entries))
	}

	u, err := d.URL(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://localhost:8080/pictures/" + key; u != want {
		t.Fatalf("URL %s, want %s", u, want)
	}

	mux := http.NewServeMux()
	mux.Handle(PathPrefix, d.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + strings.TrimPrefix(u, "http://localhost:8080")

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.Data) {
		t.Fatalf("GET: %s, %d bytes, want 200 and the %d stored bytes", resp.Status, len(body), len(img.Data))
	}
	h := resp.Header
	for name, want := range map[string]string{
		"Content-Type":           img.ContentType,
		"Cache-Control":          "public, max-age=31536000, immutable",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	etag := h.Get("ETag")
	if etag == "" || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q, want a strong one", etag)
	}

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s, want 304", resp.Status)
	}

	resp, err = http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != img.ContentType {
		t.Errorf("HEAD: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}

	resp, err = http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}

	if err := d.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there after Delete: %v", err)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after Delete: %s, want 404", resp.Status)
	}
	if err := d.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing picture: %v", err)
	}
}

func TestDirStoreHandlerRefusesTraversal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pictures")
	d, err := NewDirStore(dir, "http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	// Files a traversal would reach, named so that only the key check stands
	// in the way.
	h := strings.Repeat("ab", 32)
	secretName := h + ".jpg"
	for _, p := range []string{filepath.Join(root, secretName), filepath.Join(root, "secret.jpg"), filepath.Join(dir, "ab", "x.jpg")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{
		"/pictures/../" + secretName,
		"/pictures/../secret.jpg",
		"/pictures/ab/../../" + secretName,
		"/pictures/%2e%2e/" + secretName,
		"/pictures/%2e%2e%2f" + secretName,
		"/pictures/ab%2f..%2f..%2f" + secretName,
		"/pictures/ab/x.jpg",
		"/pictures/" + filepath.Join(root, secretName),
		"/pictures//" + filepath.Join(root, secretName),
		"/pictures/..\\" + secretName,
		"/pictures/ab/" + h + ".jpg", // well formed, not stored
		"/pictures/",
		"/other/ab/" + h + ".jpg",
	} {
		t.Run(path, func(t *testing.T) {
			// Straight to the handler, past any cleaning a mux would do.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "http://localhost:8080"+path, nil)
			d.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Errorf("status %d, want 404", rec.Code)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Error("served the secret")
			}
		})
	}
}

func TestDirStorePutFailureIsUnavailable(t *testing.T) {
	d, dir := newDirStore(t)
	img, key := testImage(t)
	// A file where the key's directory must go (permissions would not stop
	// root, which the tests may run as).
	if err := os.WriteFile(filepath.Join(dir, key[:2]), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(context.Background(), key, img); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
}

func TestDirStoreRefusesBadKeys(t *testing.T) {
	d, _ := newDirStore(t)
	img, _ := testImage(t)
	ctx := context.Background()
	for _, key := range []string{"../../etc/passwd", "/etc/passwd", "", "ab/x.jpg"} {
		if err := d.Put(ctx, key, img); !errors.Is(err, ErrBadKey) {
			t.Errorf("Put(%q): %v, want ErrBadKey", key, err)
		}
		if err := d.Delete(ctx, key); !errors.Is(err, ErrBadKey) {
			t.Errorf("Delete(%q): %v, want ErrBadKey", key, err)
		}
		if _, err := d.URL(ctx, key); !errors.Is(err, ErrBadKey) {
			t.Errorf("URL(%q): %v, want ErrBadKey", key, err)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	const base = "http://localhost:8080"

	for _, raw := range []string{"file://" + filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), "file://localhost" + filepath.Join(tmp, "c")} {
		s, err := Open(ctx, raw, base)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		if _, ok := s.(*DirStore); !ok {
			t.Errorf("Open(%q) is a %T, want *DirStore", raw, s)
		}
	}

	t.Chdir(tmp)
	s, err := Open(ctx, "data/pictures", base)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.(*DirStore).dir, filepath.Join(tmp, "data", "pictures"); got != want {
		t.Errorf("relative dir resolved to %s, want %s", got, want)
	}

	g, err := Open(ctx, "gs://my-bucket/some/prefix/", "", WithEndpoint("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	gs, ok := g.(*GCSStore)
	if !ok {
		t.Fatalf("gs URL opened a %T", g)
	}
	defer gs.Close()
	if gs.bucket.BucketName() != "my-bucket" || gs.object("ab/c.jpg") != "some/prefix/ab/c.jpg" {
		t.Errorf("bucket %q, object %q", gs.bucket.BucketName(), gs.object("ab/c.jpg"))
	}

	for _, bad := range []struct{ raw, base string }{
		{"", base},
		{"s3://bucket", base},
		{"gs://", base},
		{"gs://bucket?x=1", base},
		{"gs://user@bucket", base},
		{"file://otherhost/dir", base},
		{filepath.Join(tmp, "d"), ""},
		{filepath.Join(tmp, "d"), "localhost:8080"},
	} {
		if s, err := Open(ctx, bad.raw, bad.base, WithEndpoint("http://127.0.0.1:1")); err == nil {
			t.Errorf("Open(%q, %q) = %T, want an error", bad.raw, bad.base, s)
		}
	}
}
