package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-chi/chi/v5"

	"idp/account"
	"idp/database/databasetest"
	"idp/oauth"
	"idp/picture"
	"idp/ratelimit"
	"idp/storage"
)

// TestHoldBody: bodies with pictures take their length from the upload
// budget until released; one that finds it taken waits, then is refused;
// small bodies take nothing; a body of unknown length takes the limit.
func TestHoldBody(t *testing.T) {
	const mib = 1 << 20
	s, err := New(Config{Issuer: "http://idp.test", UploadSpool: 6 * mib}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s.decodeWait = 100 * time.Millisecond
	body := func(n int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/v1/users", strings.NewReader(""))
		r.ContentLength = n
		return r
	}
	limit := s.MaxSignupBytes()

	first, ok := s.HoldBody(body(5*mib), limit)
	if !ok {
		t.Fatal("the first 5 MiB body was refused with the budget free")
	}
	start := time.Now()
	if _, ok := s.HoldBody(body(5*mib), limit); ok {
		t.Fatal("a second 5 MiB body was admitted into a 6 MiB budget holding 5")
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("the refused body gave up after %v, want it to wait 100ms first", took)
	}
	if _, ok := s.HoldBody(body(-1), limit); ok {
		t.Error("a body of unknown length was admitted with less than the limit free")
	}
	small, ok := s.HoldBody(body(smallBody), limit)
	if !ok {
		t.Error("a small body was refused: it should take nothing from the budget")
	}
	small()

	// A signup that finds the budget taken is answered 503 before its
	// body is read.
	rec := httptest.NewRecorder()
	s.handleSignup(rec, body(5*mib))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("signup with the upload budget taken: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}

	first()
	again, ok := s.HoldBody(body(5*mib), limit)
	if !ok {
		t.Fatal("a 5 MiB body was refused after the first was released")
	}
	again()
}

// spoolSizes are the sizes of the files in dir.
func spoolSizes(t *testing.T, dir string) []int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return nil
	}
	var sizes []int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			sizes = append(sizes, info.Size())
		}
	}
	return sizes
}

// userTokens verifies any request as user 1's.
type userTokens struct{ fakeTokens }

func (userTokens) Verify(context.Context, *http.Request, ...string) (*oauth.Principal, error) {
	return &oauth.Principal{Subject: "1", User: &storage.User{ID: 1}}, nil
}

// TestPicturesAreSpooled: the picture of a signup and of PUT
// /v1/profile/picture waits for its decode in a file of the spool of its
// own size, not in memory, and the file is gone once the request is
// answered: after the decode, after a picture over the limit (whose read
// stops there) and after one that is not an image.
func TestPicturesAreSpooled(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	store := storage.New(db)
	accounts := account.New(store, testHasher(t, 2, 1, time.Second), account.Options{})
	spool := t.TempDir()
	var atDecode []int64 // the spool's files when the decode ran
	decodes := 0
	s, err := New(Config{Issuer: "http://idp.test", Pictures: fuzzLimits, SpoolDir: spool,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Deps{
		Accounts: accounts, Users: store, Tokens: userTokens{},
		Decode: func(*picture.Upload) (picture.Image, error) {
			decodes++
			atDecode = spoolSizes(t, spool)
			return picture.Image{}, picture.ErrNotImage // stop here: 415
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, finished := serveFinished(t, s)

	good := photoJPEG(t, 200, 150)
	tooBig := append(bytes.Clone(good), make([]byte, fuzzLimits.MaxBytes+1-int64(len(good)))...)
	signup := func(pic []byte) (string, io.Reader) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("picture", "me.jpg")
		fw.Write(pic)
		for _, f := range [][2]string{{"client_id", "mobile"}, {"username", "ada"}, {"email", "ada@example.com"},
			{"password", "a sturdy passphrase"}, {"first_name", "Ada"}, {"last_name", "L"}, {"gender", "female"}} {
			mw.WriteField(f[0], f[1])
		}
		mw.Close()
		return mw.FormDataContentType(), &body
	}
	put := func(pic []byte) (string, io.Reader) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("picture", "me.jpg")
		fw.Write(pic)
		mw.Close()
		return mw.FormDataContentType(), &body
	}
	raw := func(pic []byte) (string, io.Reader) { return "image/jpeg", bytes.NewReader(pic) }
	tests := []struct {
		name, method, path string
		body               func([]byte) (string, io.Reader)
		pic                []byte
		status             int
		decoded            bool
	}{
		{"signup, decoded", http.MethodPost, "/v1/users", signup, good, 415, true},
		{"signup, over the limit", http.MethodPost, "/v1/users", signup, tooBig, 413, false},
		{"signup, not an image", http.MethodPost, "/v1/users", signup, []byte("plain text, not an image"), 415, false},
		{"put multipart, decoded", http.MethodPut, "/v1/profile/picture", put, good, 415, true},
		{"put raw, decoded", http.MethodPut, "/v1/profile/picture", raw, good, 415, true},
		{"put raw, over the limit", http.MethodPut, "/v1/profile/picture", raw, tooBig, 413, false},
		{"put raw, not an image", http.MethodPut, "/v1/profile/picture", raw, []byte("plain text, not an image"), 415, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			decodes, atDecode = 0, nil
			ct, body := tc.body(tc.pic)
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
			req.Header.Set("Content-Type", ct)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			<-finished
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", res.StatusCode, tc.status, b)
			}
			if tc.decoded {
				if decodes != 1 || len(atDecode) != 1 || atDecode[0] != int64(len(tc.pic)) {
					t.Errorf("%d decodes, with %v bytes in the spool; want one, with a file of the picture's %d", decodes, atDecode, len(tc.pic))
				}
			} else if decodes != 0 {
				t.Errorf("%d decodes, want none", decodes)
			}
			if sizes := spoolSizes(t, spool); len(sizes) != 0 {
				t.Errorf("after the answer the spool holds %v", sizes)
			}
		})
	}
}

// TestSpoolAfterDisconnect: a client that goes away in the middle of its
// picture leaves nothing in the spool once its request has ended.
func TestSpoolAfterDisconnect(t *testing.T) {
	spool := t.TempDir()
	s, err := New(Config{Issuer: "http://idp.test", Pictures: fuzzLimits, SpoolDir: spool,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Deps{Tokens: userTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	srv, finished := serveFinished(t, s)

	for _, path := range []string{"/v1/users", "/v1/profile/picture"} {
		t.Run(path, func(t *testing.T) {
			method := http.MethodPost
			if path == "/v1/profile/picture" {
				method = http.MethodPut
			}
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			fw, _ := mw.CreateFormFile("picture", "me.jpg")
			fw.Write(bytes.Repeat([]byte{0xAB}, 32<<10)) // half of what is announced
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: idp.test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				method, path, mw.FormDataContentType(), body.Len()+32<<10)
			if _, err := conn.Write(body.Bytes()); err != nil {
				t.Fatal(err)
			}
			// The picture is being spooled; then the client goes.
			for deadline := time.Now().Add(10 * time.Second); len(spoolSizes(t, spool)) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the picture never reached the spool")
				}
			}
			conn.Close()
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not end after the client went away")
			}
			if sizes := spoolSizes(t, spool); len(sizes) != 0 {
				t.Errorf("after the client went away the spool holds %v", sizes)
			}
		})
	}
}

// TestReadForm: a page's multipart form has its text fields in PostForm
// and Form and its pictures in the spool, each a file of its size; too
// much text, or a body that breaks off in the picture, is an error that
// leaves nothing in the spool; a form that is not multipart is
// ParseForm's.
func TestReadForm(t *testing.T) {
	spool := t.TempDir()
	s, err := New(Config{Issuer: "http://idp.test", SpoolDir: spool}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	form := func(text string, pics ...[]byte) (string, []byte) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("action", "picture")
		mw.WriteField("note", text)
		for _, p := range pics {
			fw, _ := mw.CreateFormFile("picture", "me.jpg")
			fw.Write(p)
		}
		fw, _ := mw.CreateFormFile("other", "skipped.bin")
		fw.Write([]byte("not kept"))
		mw.Close()
		return mw.FormDataContentType(), body.Bytes()
	}
	pic := bytes.Repeat([]byte{0xCD}, 100<<10)
	read := func(ct string, body io.Reader) (*http.Request, []*picture.File, error) {
		r := httptest.NewRequest(http.MethodPost, "/account?q=1", body)
		r.Header.Set("Content-Type", ct)
		files, err := s.ReadForm(r, 1<<20)
		return r, files, err
	}

	ct, body := form("hello", pic)
	r, files, err := read(ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.PostForm.Get("action") != "picture" || r.PostForm.Get("note") != "hello" || r.Form.Get("q") != "1" || r.Form.Get("note") != "hello" {
		t.Errorf("fields: PostForm %v, Form %v", r.PostForm, r.Form)
	}
	if sizes := spoolSizes(t, spool); len(files) != 1 || len(sizes) != 1 || sizes[0] != int64(len(pic)) || files[0].Size() != int64(len(pic)) {
		t.Errorf("%d pictures, the spool holds %v; want one file of %d bytes", len(files), sizes, len(pic))
	}
	if src, present, err := FormPicture(files); !present || err != nil || src.Size() != int64(len(pic)) {
		t.Errorf("FormPicture: present %v, %v", present, err)
	}
	ClosePictures(files)
	if sizes := spoolSizes(t, spool); len(sizes) != 0 {
		t.Errorf("after ClosePictures the spool holds %v", sizes)
	}

	ct, body = form("hello", pic, pic)
	_, files, err = read(ct, bytes.NewReader(body))
	if _, _, ferr := FormPicture(files); err != nil || len(files) != 2 || ferr == nil {
		t.Errorf("two pictures: %d files (%v), FormPicture's error %v; want two, and an error", len(files), err, ferr)
	}
	ClosePictures(files)

	ct, body = form(strings.Repeat("x", maxFormText+1), pic)
	var tooBig *http.MaxBytesError
	if _, files, err = read(ct, bytes.NewReader(body)); !errors.As(err, &tooBig) || files != nil {
		t.Errorf("too much text: %d files, %v; want none and *http.MaxBytesError", len(files), err)
	}

	ct, body = form("hello", pic)
	broken := io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, files, err = read(ct, broken); !errors.Is(err, io.ErrUnexpectedEOF) || files != nil {
		t.Errorf("a body broken off in the picture: %d files, %v; want none and the error", len(files), err)
	}
	if sizes := spoolSizes(t, spool); len(sizes) != 0 {
		t.Errorf("after the failed reads the spool holds %v", sizes)
	}

	r, files, err = read("application/x-www-form-urlencoded", strings.NewReader("action=profile&first_name=Ada"))
	if err != nil || files != nil || r.PostForm.Get("first_name") != "Ada" {
		t.Errorf("a urlencoded form: %v, %d files, PostForm %v", err, len(files), r.PostForm)
	}
}

// TestNewSpoolDir: each start gets a fresh directory of its own, and
// removing it takes whatever is in it.
func TestNewSpoolDir(t *testing.T) {
	parent := t.TempDir()
	first, remove, err := NewSpoolDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	second, removeSecond, err := NewSpoolDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	defer removeSecond()
	if first == second {
		t.Fatalf("two starts share the spool %s", first)
	}
	if err := os.WriteFile(first+"/upload-left", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after remove: %v, want the directory gone", err)
	}
}

// serveFinished serves s's routes; finished is told when a request's
// handler has returned, its clean-up done.
func serveFinished(t *testing.T, s *Server) (srv *httptest.Server, finished <-chan struct{}) {
	router := chi.NewRouter()
	s.Mount(router)
	done := make(chan struct{}, 1)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		router.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv, done
}

// TestHoldBodyPerAddress: one client address holds at most a quarter of
// the upload budget, and always one upload; past that it waits, and is
// refused at the wait's end, while the budget has room for other addresses;
// what it releases lets its next body in, a waiting one too.
func TestHoldBodyPerAddress(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name   string
		budget int64
		admit  int // 5 MiB bodies one address may hold at once
	}{
		{"a quarter of the budget", 64 * mib, 3},
		{"one upload when a quarter is less", 12 * mib, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Issuer: "http://idp.test", UploadSpool: tc.budget}, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			s.decodeWait = 100 * time.Millisecond
			limit := s.MaxSignupBytes()
			body := func(addr string) *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/v1/users", strings.NewReader(""))
				r.ContentLength = 5 * mib
				if addr != "" {
					r = r.WithContext(ratelimit.WithClientAddr(r.Context(), addr))
				}
				return r
			}

			var held []func()
			for i := range tc.admit {
				release, ok := s.HoldBody(body("192.0.2.1"), limit)
				if !ok {
					t.Fatalf("body %d of the address was refused within its share", i+1)
				}
				held = append(held, release)
			}
			if _, ok := s.HoldBody(body("192.0.2.1"), limit); ok {
				t.Fatalf("body %d of one address was admitted past its share", tc.admit+1)
			}
			other, ok := s.HoldBody(body("198.51.100.7"), limit)
			if !ok {
				t.Fatal("another address was refused while the budget had room")
			}
			other()
			unknown, ok := s.HoldBody(body(""), limit)
			if !ok {
				t.Fatal("a request with no client address was refused while the budget had room")
			}
			unknown()

			held[0]()
			held[0]() // a release is counted once
			again, ok := s.HoldBody(body("192.0.2.1"), limit)
			if !ok {
				t.Fatal("the address was refused after releasing a body")
			}
			if _, ok := s.HoldBody(body("192.0.2.1"), limit); ok {
				t.Fatal("a release given twice made room twice")
			}
			again()

			// A body past the share waits for the address to release one.
			fill, ok := s.HoldBody(body("192.0.2.1"), limit)
			if !ok {
				t.Fatal("the address was refused with room in its share")
			}
			s.decodeWait = time.Minute
			waited := make(chan bool)
			go func() {
				release, ok := s.HoldBody(body("192.0.2.1"), limit)
				if ok {
					release()
				}
				waited <- ok
			}()
			for waiting, giveUp := false, time.Now().Add(10*time.Second); !waiting; {
				if time.Now().After(giveUp) {
					t.Fatal("the body past the share never waited")
				}
				s.uploads.byAddress.mu.Lock()
				a := s.uploads.byAddress.by["192.0.2.1"]
				waiting = a != nil && a.users == tc.admit+1
				s.uploads.byAddress.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
			fill()
			if !<-waited {
				t.Fatal("a waiting body was refused after the address released one")
			}
			for _, release := range held[1:] {
				release()
			}
			if n := len(s.uploads.byAddress.by); n != 0 {
				t.Errorf("%d addresses still counted after every release", n)
			}
		})
	}
}
