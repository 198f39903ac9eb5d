package picture

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"idp/fake"
)

const (
	testBucket   = fake.Bucket
	testAccessID = "pictures@test-project.iam.gserviceaccount.com"
)

// newSigningKey makes an RSA key and its PKCS#8 PEM, as in a service
// account's JSON key file.
func newSigningKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestGCSStore(t *testing.T) {
	ctx := context.Background()
	srv := fake.GCS(t)
	client := fake.GCSClient(t, srv)
	key, keyPEM := newSigningKey(t)
	st, err := Open(ctx, "gs://"+testBucket+"/avatars", "http://localhost:8080",
		WithGCSClient(client), WithEndpoint(srv.URL()), WithSigningKey(testAccessID, keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	img, k := testImage(t)
	object := "avatars/" + k

	if err := st.Put(ctx, k, img); err != nil {
		t.Fatal(err)
	}
	attrs, err := client.Bucket(testBucket).Object(object).Attrs(ctx)
	if err != nil {
		t.Fatalf("object %s after Put: %v", object, err)
	}
	if attrs.ContentType != img.ContentType {
		t.Errorf("Content-Type %q, want %q", attrs.ContentType, img.ContentType)
	}
	if attrs.CacheControl != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control %q", attrs.CacheControl)
	}
	if attrs.Size != int64(len(img.Data)) {
		t.Errorf("size %d, want %d", attrs.Size, len(img.Data))
	}

	// Idempotent: the second Put of the same key succeeds without
	// rewriting the object.
	if err := st.Put(ctx, k, img); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	again, err := client.Bucket(testBucket).Object(object).Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Generation != attrs.Generation {
		t.Errorf("second Put rewrote the object (generation %d → %d)", attrs.Generation, again.Generation)
	}

	signed, err := st.URL(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if got := q.Get("X-Goog-Algorithm"); got != "GOOG4-RSA-SHA256" {
		t.Errorf("X-Goog-Algorithm %q", got)
	}
	if exp, err := strconv.Atoi(q.Get("X-Goog-Expires")); err != nil || exp < 600 || exp > 3600 {
		t.Errorf("X-Goog-Expires %q, want 600–3600 seconds", q.Get("X-Goog-Expires"))
	}
	if !strings.HasPrefix(q.Get("X-Goog-Credential"), testAccessID+"/") {
		t.Errorf("X-Goog-Credential %q", q.Get("X-Goog-Credential"))
	}
	if q.Get("X-Goog-Signature") == "" {
		t.Fatal("no X-Goog-Signature")
	}
	if want := srv.URL() + "/" + testBucket + "/" + object; !strings.HasPrefix(signed, want+"?") {
		t.Errorf("URL %s, want it to start with %s?", signed, want)
	}
	if err := verifyV4Signature(u, &key.PublicKey); err != nil {
		t.Errorf("signature: %v", err)
	}
	other, _ := newSigningKey(t)
	if err := verifyV4Signature(u, &other.PublicKey); err == nil {
		t.Error("signature verifies with another key")
	}
	if again, _ := st.URL(ctx, k); again != signed {
		t.Error("a second URL right away differs: the signed URL is not reused")
	}

	// A plain GET, no headers, downloads the picture from the emulator.
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.Data) {
		t.Fatalf("GET signed URL: %s, %d bytes, want 200 and %d bytes", resp.Status, len(body), len(img.Data))
	}

	if err := st.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Bucket(testBucket).Object(object).Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("object after Delete: %v, want ErrObjectNotExist", err)
	}
	if err := st.Delete(ctx, k); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
	if err := st.Put(ctx, "../../x", img); !errors.Is(err, ErrBadKey) {
		t.Errorf("Put of a bad key: %v, want ErrBadKey", err)
	}
}

// verifyV4Signature checks a V4 signed URL the way Cloud Storage does:
// rebuild the canonical request and the string to sign from the URL, and
// verify X-Goog-Signature over it with the service account's public key.
// The emulator serves signed URLs without checking them.
func verifyV4Signature(u *url.URL, pub *rsa.PublicKey) error {
	q := u.Query()
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil {
		return err
	}
	q.Del("X-Goog-Signature")
	canonical := strings.Join([]string{
		http.MethodGet,
		u.EscapedPath(),
		strings.ReplaceAll(q.Encode(), "+", "%20"),
		"host:" + u.Hostname() + "\n",
		q.Get("X-Goog-SignedHeaders"),
		"UNSIGNED-PAYLOAD",
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	_, scope, _ := strings.Cut(q.Get("X-Goog-Credential"), "/")
	stringToSign := strings.Join([]string{
		q.Get("X-Goog-Algorithm"), q.Get("X-Goog-Date"), scope, hex.EncodeToString(sum[:]),
	}, "\n")
	digest := sha256.Sum256([]byte(stringToSign))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
}

// TestGCSStoreEmulatorHost opens the store from nothing but the URL and
// STORAGE_EMULATOR_HOST, as a developer running fake-gcs-server would.
func TestGCSStoreEmulatorHost(t *testing.T) {
	srv := fake.GCS(t)
	_, keyPEM := newSigningKey(t)
	img, k := testImage(t)
	for name, host := range map[string]string{
		"with scheme":    srv.URL(),
		"without scheme": strings.TrimPrefix(srv.URL(), "http://"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", host)
			ctx := context.Background()
			st, err := Open(ctx, "gs://"+testBucket, "", WithSigningKey(testAccessID, keyPEM))
			if err != nil {
				t.Fatal(err)
			}
			defer st.(*GCSStore).Close()
			if err := st.Put(ctx, k, img); err != nil {
				t.Fatal(err)
			}
			signed, err := st.URL(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := srv.URL() + "/" + testBucket + "/" + k + "?"; !strings.HasPrefix(signed, want) {
				t.Fatalf("URL %s, want it to start with %s", signed, want)
			}
			resp, err := http.Get(signed)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.Data) {
				t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
			}
			if err := st.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGCSStoreEmulatorWithoutKey: against the emulator, with no signing
// identity configured (a compose setup), URLs are still made, naming the
// public endpoint when one is given, and a plain GET downloads the picture.
func TestGCSStoreEmulatorWithoutKey(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	img, k := testImage(t)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	// The service reaches the emulator as 127.0.0.1, clients as localhost.
	public := strings.Replace(srv.URL(), "127.0.0.1", "localhost", 1)
	ctx := context.Background()
	st, err := Open(ctx, "gs://"+testBucket, "", WithPublicEndpoint(public))
	if err != nil {
		t.Fatal(err)
	}
	defer st.(*GCSStore).Close()
	if err := st.Put(ctx, k, img); err != nil {
		t.Fatal(err)
	}
	signed, err := st.URL(ctx, k)
	if err != nil {
		t.Fatalf("URL without a configured key: %v", err)
	}
	if !strings.HasPrefix(signed, public+"/"+testBucket+"/"+k+"?") || !strings.Contains(signed, "X-Goog-Signature=") {
		t.Fatalf("URL %s does not name the public endpoint %s", signed, public)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.Data) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
	}
	if _, err := Open(ctx, "gs://"+testBucket, "", WithPublicEndpoint("ftp://x")); err == nil {
		t.Error("a non-http public endpoint was accepted")
	}
}

func TestGCSStoreUnreachable(t *testing.T) {
	// A loopback port that was just free: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	_, keyPEM := newSigningKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Open(ctx, "gs://"+testBucket, "", WithEndpoint("http://"+addr), WithSigningKey(testAccessID, keyPEM))
	if err != nil {
		t.Fatalf("Open must not need the bucket: %v", err)
	}
	defer st.(*GCSStore).Close()
	img, k := testImage(t)

	start := time.Now()
	err = st.Put(ctx, k, img)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put: %v, want ErrUnavailable", err)
	}
	t.Logf("Put after %v: %v", time.Since(start), err)
	err = st.Delete(ctx, k)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Delete: %v, want ErrUnavailable", err)
	}
	t.Logf("Delete after %v: %v", time.Since(start), err)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %v: retries are not bounded", d)
	}
	// Signing needs no network with a key.
	if _, err := st.URL(ctx, k); err != nil {
		t.Errorf("URL: %v", err)
	}
}
