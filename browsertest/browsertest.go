// Package browsertest runs Debian's Chromium, headless, from Go tests through
// the DevTools protocol (chromedp). Only tests import it.
//
// A test that calls New is skipped when Chromium is missing, unless CI=true,
// where it fails: CI installs Chromium (.ci/run), and a browser test that
// silently skips there would prove nothing.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's package chromium puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// InstallHint is the command that installs Chromium on Debian.
const InstallHint = "apt-get update && apt-get install -y chromium"

// DefaultTimeout bounds a browser's whole life in a test.
const DefaultTimeout = 2 * time.Minute

// Option changes what New starts.
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithTimeout bounds the browser's life (DefaultTimeout otherwise). When it
// ends the browser is killed and every later action fails.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Flags are the browser's command line switches, besides the ones chromedp
// adds itself (the DevTools pipe and the blank first page). No sandbox:
// tests run as root in a container, where Chromium's sandbox cannot start.
func Flags(userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(userDataDir),
	}
}

// lockedBuffer collects the browser's output for a failing test's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// New starts a headless Chromium with a fresh profile and returns a
// chromedp context for its first tab. The browser is closed, and its
// profile removed, when the test ends. Give the context to chromedp.Do and
// friends; derive shorter timeouts from it for single steps.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, f := range opts {
		f(&o)
	}
	path := Require(t)

	// TempDir first: cleanups run last-in first-out, so the browser is gone
	// before its profile directory is removed.
	profile := t.TempDir()
	out := &lockedBuffer{}

	ctx, cancelTimeout := context.WithTimeout(context.Background(), o.timeout)
	allocOpts := append(Flags(profile), chromedp.ExecPath(path), chromedp.CombinedOutput(out))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		// Close gracefully, but do not wait long for it.
		cctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("browsertest: closing the browser: %v", err)
		}
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		if t.Failed() {
			if s := out.String(); s != "" {
				t.Logf("browsertest: browser output:\n%s", s)
			}
		}
	})
	// Start the browser now, so that a broken install fails here and not in
	// the test's first step.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("browsertest: starting %s: %v\n%s", path, err, out.String())
	}
	return bctx
}

// Require returns the path of Chromium. When it is missing it fails the
// test under CI=true and skips it otherwise, with the command that
// installs it.
func Require(t testing.TB) string {
	t.Helper()
	return require(t, []string{ChromiumPath, "chromium"}, os.Getenv("CI") == "true")
}

// require looks for the first of candidates that exists.
func require(t testing.TB, candidates []string, ci bool) string {
	t.Helper()
	for _, c := range candidates {
		if path, err := exec.LookPath(c); err == nil {
			return path
		}
	}
	if ci {
		t.Fatalf("browsertest: Chromium is missing (%s): install it with %q", ChromiumPath, InstallHint)
	}
	t.Skipf("browsertest: Chromium is missing (%s); install it with %q to run this test", ChromiumPath, InstallHint)
	return ""
}

// NewUser opens a tab in a new browser context of ctx's browser: its own
// cookies and storage, as a second person (or a private window) has, at the
// cost of a tab rather than a browser. It is closed when the test ends.
func NewUser(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	uctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(uctx); err != nil {
		t.Fatalf("browsertest: opening a tab in a new browser context: %v", err)
	}
	return uctx
}

// StepTimeout bounds one step of Do and Get.
const StepTimeout = 20 * time.Second

// Do runs actions in ctx's tab within StepTimeout, failing the test on an
// error.
func Do(t testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// Get runs one action that yields a value, within StepTimeout, failing the
// test on an error.
func Get[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
