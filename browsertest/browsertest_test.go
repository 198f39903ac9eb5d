package browsertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// fakeTB records Fatalf and Skipf and stops the goroutine as they do.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRequireMissingChromium(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ci        bool
		wantFatal bool
	}{
		{"local skips", false, false},
		{"CI fails", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			done := make(chan string)
			go func() {
				defer close(done)
				done <- require(f, []string{"/nonexistent/chromium-for-test"}, tc.ci)
			}()
			if path := <-done; path != "" {
				t.Fatalf("require returned %q for a missing browser", path)
			}
			msg := f.skip
			if tc.wantFatal {
				msg = f.fatal
			}
			if (f.fatal != "") != tc.wantFatal || (f.skip != "") == tc.wantFatal {
				t.Fatalf("fatal=%q skip=%q, want fatal=%v", f.fatal, f.skip, tc.wantFatal)
			}
			if !strings.Contains(msg, "apt-get install -y chromium") {
				t.Errorf("message %q does not say how to install Chromium", msg)
			}
		})
	}
}

// loopbackServer serves h on 127.0.0.1 only.
func loopbackServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestNewLoadsAPage(t *testing.T) {
	ctx := New(t)
	srv := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>hello</title><p id="ua"></p>`)
	}))
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != "hello" {
		t.Errorf("title %q, want hello", title)
	}
	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ua, "HeadlessChrome") {
		t.Errorf("user agent %q: not headless", ua)
	}

	// The browser's own record of its command line.
	if err := chromedp.Do(ctx, chromedp.Navigate("chrome://version")); err != nil {
		t.Fatal(err)
	}
	cmdline, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("command_line")))
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="} {
		if !strings.Contains(cmdline, flag) {
			t.Errorf("command line %q lacks %s", cmdline, flag)
		}
	}
}

func TestNewUserHasItsOwnCookies(t *testing.T) {
	ctx := New(t)
	srv := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "who", Value: "first", Path: "/"})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		c, _ := r.Cookie("who")
		fmt.Fprintf(w, `<!doctype html><title>cookie</title><p id="who">%v</p>`, c != nil)
	}))
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/set")); err != nil {
		t.Fatal(err)
	}
	other := NewUser(t, ctx)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{{"same user", ctx, "true"}, {"new user", other, "false"}} {
		if err := chromedp.Do(tc.ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
			t.Fatal(err)
		}
		got, err := chromedp.Run(tc.ctx, chromedp.Text(chromedp.ID("who")))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: cookie sent %s, want %s", tc.name, got, tc.want)
		}
	}
}

// createPasskey makes a discoverable credential with user verification
// through the page's navigator.credentials, as a registration page would.
const createPasskey = `(async () => {
	const cred = await navigator.credentials.create({publicKey: {
		rp: {id: "localhost", name: "idp test"},
		user: {id: new Uint8Array([1, 2, 3, 4]), name: "alice", displayName: "Alice"},
		challenge: crypto.getRandomValues(new Uint8Array(32)),
		pubKeyCredParams: [{type: "public-key", alg: -7}],
		authenticatorSelection: {residentKey: "required", userVerification: "required"},
	}});
	return cred.type;
})()`

func TestVirtualAuthenticator(t *testing.T) {
	ctx := New(t)
	srv := loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>passkeys</title>`)
	}))
	// WebAuthn refuses an IP address as RP ID; localhost is a secure
	// context that Chromium resolves to the loopback address itself.
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:"+port+"/")); err != nil {
		t.Fatal(err)
	}

	id := AddAuthenticator(t, ctx, Passkey())
	creds, err := Credentials(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 0 {
		t.Fatalf("a new authenticator holds %d credentials", len(creds))
	}

	typ, err := chromedp.Run(ctx, chromedp.Evaluate[string](createPasskey, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("navigator.credentials.create: %v", err)
	}
	if typ != "public-key" {
		t.Fatalf("credential type %q", typ)
	}
	creds, err = Credentials(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("credentials after create: %+v", creds)
	}

	if err := RemoveAuthenticator(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := Credentials(ctx, id); err == nil {
		t.Fatal("a removed authenticator still answers")
	}
}
