package profile

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"

	"idp/account"
	"idp/budget"
	"idp/database/databasetest"
	"idp/fake"
	"idp/oauth"
	"idp/password"
	"idp/picture"
	"idp/storage"
)

// photoJPEG is a w×h JPEG.
func photoJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetRGBA(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: uint8(x ^ y), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeTokens authenticates the client "mobile" only; nothing else is used
// before a picture would be decoded.
type fakeTokens struct{}

func (fakeTokens) AuthenticateClient(_ context.Context, _ *http.Request, form url.Values) (fosite.Client, error) {
	if form.Get("client_id") != "mobile" {
		return nil, fosite.ErrInvalidClient
	}
	return &fosite.DefaultClient{ID: "mobile", Public: true, GrantTypes: []string{"password"}}, nil
}

func (fakeTokens) IssueTokens(context.Context, fosite.Client, int64, []string) (map[string]any, error) {
	return nil, errors.New("not in this test")
}

func (fakeTokens) Verify(context.Context, *http.Request, ...string) (*oauth.Principal, error) {
	return nil, oauth.ErrNoToken
}

func (fakeTokens) RevokeSubject(context.Context, string) error { return nil }

func (fakeTokens) Client(context.Context, string) (fosite.Client, error) {
	return nil, fosite.ErrNotFound
}

func testHasher(t testing.TB, iterations uint32, concurrency int, wait time.Duration, opts ...password.Option) *password.Hasher {
	t.Helper()
	p := password.Params{Memory: 19 * 1024, Iterations: iterations, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := password.NewHasher(p, concurrency, wait, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSignupDecodesOnlyAfterAuthAndChecks sends multipart signups whose
// picture part comes first, and counts the decodes: none for an unknown
// client, for invalid fields, for a picture refused by its header or for a
// taken name; only a signup that passed all of those reaches the decoder.
func TestSignupDecodesOnlyAfterAuthAndChecks(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	store := storage.New(db)
	accounts := account.New(store, testHasher(t, 2, 1, time.Second), account.Options{})
	if _, err := accounts.Create(context.Background(), account.NewUser{Username: "taken", Email: "taken@example.com",
		Password: "a sturdy passphrase", FirstName: "T", LastName: "T", Gender: "female"}); err != nil {
		t.Fatal(err)
	}
	var decodes atomic.Int64
	s, err := New(Config{Issuer: "http://idp.test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Deps{
		Accounts: accounts, Users: store, Tokens: fakeTokens{},
		Decode: func(*picture.Upload) (picture.Image, error) {
			decodes.Add(1)
			return picture.Image{}, picture.ErrNotImage // stop here: 415
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	s.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	bomb, good := fake.DeepPNG(), photoJPEG(t, 64, 48)
	fields := func(clientID, username string) [][2]string {
		return [][2]string{{"client_id", clientID}, {"username", username}, {"email", username + "@example.com"},
			{"password", "a sturdy passphrase"}, {"first_name", "Ada"}, {"last_name", "L"}, {"gender", "female"}}
	}
	tests := []struct {
		name    string
		fields  [][2]string
		pic     []byte
		status  int
		decodes int64
	}{
		{"unknown client, the 16-bit bomb", fields("nobody", "ada"), bomb, 401, 0},
		{"unknown client, a plain picture", fields("nobody", "ada"), good, 401, 0},
		{"no client at all", fields("", "ada"), good, 401, 0},
		{"invalid username", fields("mobile", "a"), good, 422, 0},
		{"the 16-bit bomb, refused from its header", fields("mobile", "ada"), bomb, 422, 0},
		{"taken username", fields("mobile", "taken"), good, 409, 0},
		{"all checks passed: decoded", fields("mobile", "ada"), good, 415, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			decodes.Store(0)
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			fw, _ := mw.CreateFormFile("picture", "me.png") // the picture first
			fw.Write(tc.pic)
			for _, f := range tc.fields {
				if f[1] != "" {
					mw.WriteField(f[0], f[1])
				}
			}
			mw.Close()
			start := time.Now()
			res, err := http.Post(srv.URL+"/v1/users", mw.FormDataContentType(), &body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", res.StatusCode, tc.status, b)
			}
			if n := decodes.Load(); n != tc.decodes {
				t.Errorf("%d decodes, want %d", n, tc.decodes)
			}
			if tc.status == 401 {
				if taken, _ := accounts.Taken(context.Background(), "ada", "ada@example.com"); len(taken) != 0 {
					t.Errorf("a refused signup created %v", taken)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("the 401 took %v", d)
				}
			}
		})
	}
}

// TestDecodeAndHashShareTheBudget: while two real password hashes hold the
// whole budget, a picture decode waits and then is busy; while a decode
// holds it, a hash waits and then is busy; each goes through once the other
// gives the memory back within its wait.
func TestDecodeAndHashShareTheBudget(t *testing.T) {
	ctx := context.Background()
	p := password.Params{Memory: 19 * 1024}
	memory := budget.New(password.MemoryBudget(p, 2))
	// Slow hashes (about a second each) that hold their 19 MiB a while.
	slow := testHasher(t, 64, 2, 100*time.Millisecond, password.WithBudget(memory))
	var decodes atomic.Int64
	decoding, release := make(chan struct{}), make(chan struct{})
	s, err := New(Config{Issuer: "http://idp.test"}, Deps{Memory: memory, Decode: func(u *picture.Upload) (picture.Image, error) {
		decodes.Add(1)
		decoding <- struct{}{}
		<-release
		return picture.Image{Width: u.Width(), Height: u.Height()}, nil // the decode itself is not the point
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.decodeWait = 150 * time.Millisecond
	// The largest RGBA picture the limits admit: decoded, it alone is more
	// than the budget.
	var largest bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&largest, image.NewNRGBA(image.Rect(0, 0, picture.DefaultMaxSide, picture.DefaultMaxSide))); err != nil {
		t.Fatal(err)
	}
	big, err := picture.Inspect(largest.Bytes(), s.cfg.Pictures)
	if err != nil {
		t.Fatal(err)
	}
	if big.Memory() < memory.Size() {
		t.Fatalf("the test picture needs %d bytes, less than the whole budget of %d", big.Memory(), memory.Size())
	}

	// Hashes hold the budget: the decode is refused without decoding.
	hashed := make(chan error, 2)
	for range 2 {
		go func() { _, err := slow.Hash(ctx, "a sturdy passphrase"); hashed <- err }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := memory.Acquire(ctx, 1, 0)
		if err != nil {
			break // both hashes are running
		}
		r()
		if time.Now().After(deadline) {
			t.Fatal("the hashes never held the budget")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := s.process(ctx, big); !errors.Is(err, errBusy) {
		t.Fatalf("decode with the budget held by hashes: %v, want busy", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("the decode gave up after %v without waiting", took)
	}
	if n := decodes.Load(); n != 0 {
		t.Fatalf("%d decodes while the hashes held the budget", n)
	}
	for range 2 {
		if err := <-hashed; err != nil {
			t.Fatal(err)
		}
	}

	// A decode holds the budget: a hash waits, and is busy.
	done := make(chan error, 1)
	s.decodeWait = 5 * time.Second
	go func() { _, err := s.process(ctx, big); done <- err }()
	<-decoding
	fast := testHasher(t, 2, 2, 100*time.Millisecond, password.WithBudget(memory))
	start = time.Now()
	if _, err := fast.Hash(ctx, "a sturdy passphrase"); !errors.Is(err, password.ErrBusy) {
		t.Fatalf("hash with the budget held by a decode: %v, want ErrBusy", err)
	}
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("the hash gave up after %v without waiting", took)
	}
	// Given back while a hash waits: the hash goes through.
	patient := testHasher(t, 2, 2, 5*time.Second, password.WithBudget(memory))
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	if _, err := patient.Hash(ctx, "a sturdy passphrase"); err != nil {
		t.Fatalf("hash after the decode: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the decode: %v", err)
	}
}

// TestDecodeLeavesItsGarbageCollected: what a decode allocated is garbage
// once it ends, and the next holder of its bytes (a hash's buffer, most
// often) has it collected before allocating, so that the heap does not hold
// both at once.
func TestDecodeLeavesItsGarbageCollected(t *testing.T) {
	ctx := context.Background()
	memory := budget.New(64 << 20)
	s, err := New(Config{Issuer: "http://idp.test"}, Deps{Memory: memory, Decode: func(u *picture.Upload) (picture.Image, error) {
		return picture.Image{Width: u.Width(), Height: u.Height()}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	u, err := picture.Inspect(b.Bytes(), s.cfg.Pictures)
	if err != nil {
		t.Fatal(err)
	}
	gcs := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumGC
	}
	// No collection but the ones asked for.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// Whatever was announced before the decode is collected first.
	r, err := memory.Acquire(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r()
	if _, err := s.process(ctx, u); err != nil {
		t.Fatal(err)
	}
	before := gcs()
	r, err = memory.Acquire(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r()
	if gcs() == before {
		t.Error("the bytes a decode gave back were handed out with its garbage uncollected")
	}
}
