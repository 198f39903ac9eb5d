package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

func TestLimiterTripsAndRecovers(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := fake.NewClock(time.Date(2026, 5, 1, 12, 0, 10, 0, time.UTC))
		l := New(storage.New(db), nil, c.Now)
		rule := Rule{Name: "token", Limit: 3, Window: time.Minute}
		for i := range 3 {
			if ok, _, err := l.Allow(ctx, rule, "198.51.100.7"); !ok || err != nil {
				t.Fatalf("request %d refused: %v", i+1, err)
			}
		}
		ok, wait, err := l.Allow(ctx, rule, "198.51.100.7")
		if ok || err != nil || wait != 50*time.Second {
			t.Errorf("4th request: ok=%v wait=%v err=%v, want refused for 50s", ok, wait, err)
		}
		// Another client and another rule count apart.
		if ok, _, _ := l.Allow(ctx, rule, "198.51.100.8"); !ok {
			t.Error("another client was refused")
		}
		if ok, _, _ := l.Allow(ctx, Rule{Name: "signup", Limit: 3, Window: time.Minute}, "198.51.100.7"); !ok {
			t.Error("another rule was refused")
		}
		// The next window starts afresh.
		c.Advance(50 * time.Second)
		if ok, _, _ := l.Allow(ctx, rule, "198.51.100.7"); !ok {
			t.Error("still refused in the next window")
		}
		// Old windows are cleaned up.
		c.Advance(5 * time.Minute)
		if n, err := l.DeleteExpired(ctx); err != nil || n == 0 {
			t.Errorf("DeleteExpired = %d, %v", n, err)
		}
		// Zero turns the rule off.
		for range 10 {
			if ok, _, _ := l.Allow(ctx, Rule{Name: "off", Window: time.Minute}, "x"); !ok {
				t.Fatal("a disabled rule refused")
			}
		}
	})
}

// TestLimiterLongKeys has keys longer than any row id: two that differ only
// at their end count apart, each starts afresh in its next window, and what
// the limiter keeps of them is bounded whatever their length.
func TestLimiterLongKeys(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		c := fake.NewClock(time.Date(2026, 5, 1, 12, 0, 10, 0, time.UTC))
		l := New(storage.New(db), nil, c.Now)
		rule := Rule{Name: "forgot-mail", Limit: 1, Window: time.Minute}
		long := strings.Repeat("a", 60_000)
		keys := []string{"login:" + long + "1", "login:" + long + "2"}
		for _, k := range keys {
			if ok, _, err := l.Allow(ctx, rule, k); !ok || err != nil {
				t.Fatalf("first request of key ending %q refused: %v", k[len(k)-1:], err)
			}
			if ok, _, _ := l.Allow(ctx, rule, k); ok {
				t.Errorf("second request of key ending %q allowed past a limit of 1", k[len(k)-1:])
			}
		}
		c.Advance(time.Minute)
		if ok, _, err := l.Allow(ctx, rule, keys[0]); !ok || err != nil {
			t.Errorf("a long key is still refused in the next window: %v", err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for name := range l.leases {
			if len(name) > len(rule.Name)+1+maxKey {
				t.Errorf("the limiter keeps a key of %d bytes, want at most %d", len(name), len(rule.Name)+1+maxKey)
			}
		}
	})
}

// TestLimiterSharedAcrossProcesses has two limiters on one database (two
// connection pools, as two processes) count one client together.
func TestLimiterSharedAcrossProcesses(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			url := e.NewURL(t)
			a, b := databasetest.Open(t, url), databasetest.Open(t, url)
			la, lb := New(storage.New(a), nil, nil), New(storage.New(b), nil, nil)
			rule := Rule{Name: "t", Limit: 40, Window: time.Hour}
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					l := la
					if i%2 == 1 {
						l = lb
					}
					for range 10 {
						ok, _, err := l.Allow(context.Background(), rule, "203.0.113.9")
						if err != nil {
							t.Error(err)
						}
						if ok {
							allowed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			// Each process may lose the rest of its last batch (4 tokens).
			if n := allowed.Load(); n > 40 || n < 40-2*3 {
				t.Errorf("%d of 80 requests allowed, want the limit of 40 less at most a batch per process", n)
			}
		})
	}
}

// TestLimiterBatches: a process takes tokens a tenth of the limit at a time,
// so most requests cost no database write, and still stops at the limit.
func TestLimiterBatches(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		counted := &countingStorage{Storage: storage.New(db)}
		l := New(counted, nil, nil)
		rule := Rule{Name: "b", Limit: 300, Window: time.Hour}
		allowed := 0
		for range 400 {
			if ok, _, err := l.Allow(ctx, rule, "k"); err != nil {
				t.Fatal(err)
			} else if ok {
				allowed++
			}
		}
		if allowed != 300 {
			t.Errorf("%d allowed, want 300", allowed)
		}
		// 10 batches of 30 reach the limit, one more finds it used up;
		// later requests are refused without asking the database.
		if counted.writes != 11 || counted.count != 330 {
			t.Errorf("%d writes, shared count %d; want 11 writes for 400 requests, count 330", counted.writes, counted.count)
		}
	})
}

func TestMiddleware(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	l := New(storage.New(db), nil, nil)
	ips, _ := ParseTrustedProxies("")
	h := l.Middleware(Rule{Name: "m", Limit: 2, Window: time.Hour}, ips.Of,
		func(w http.ResponseWriter, r *http.Request, _ time.Duration) {
			w.WriteHeader(http.StatusTooManyRequests)
		},
	)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var codes []int
	for range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.RemoteAddr = "192.0.2.1:5555"
		h.ServeHTTP(rec, req)
		codes = append(codes, rec.Code)
		if rec.Code == 429 && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("codes %v", codes)
	}
}

func TestClientIP(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	none, _ := ParseTrustedProxies("")
	tests := []struct {
		name   string
		ips    ClientIP
		remote string
		xff    []string
		want   string
	}{
		{"direct", none, "203.0.113.5:1234", nil, "203.0.113.5"},
		{"spoofed header from an untrusted peer", none, "203.0.113.5:1234", []string{"1.2.3.4"}, "203.0.113.5"},
		{"spoofed header, no proxies trusted, peer is a private address", none, "10.1.1.1:1", []string{"1.2.3.4"}, "10.1.1.1"},
		{"through a trusted proxy", proxies, "10.1.1.1:1", []string{"203.0.113.5"}, "203.0.113.5"},
		{"client spoofs through a trusted proxy", proxies, "10.1.1.1:1", []string{"6.6.6.6, 203.0.113.5"}, "203.0.113.5"},
		{"two trusted proxies", proxies, "10.1.1.1:1", []string{"203.0.113.5, 192.0.2.10"}, "203.0.113.5"},
		{"several header lines", proxies, "10.1.1.1:1", []string{"6.6.6.6", "203.0.113.5"}, "203.0.113.5"},
		{"malformed hop", proxies, "10.1.1.1:1", []string{"203.0.113.5, garbage"}, "10.1.1.1"},
		{"IPv6 grouped by /64", none, "[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", none, "[::ffff:203.0.113.5]:1", nil, "203.0.113.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := tc.ips.Of(r); got != tc.want {
				t.Errorf("Of = %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/99", "not-an-ip", "10.0.0.1/"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) succeeded", bad)
		}
	}
}

func TestClientAddrMiddleware(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if got := ClientAddr(context.Background()); got != "" {
		t.Errorf("ClientAddr of a bare context = %q", got)
	}
	var got string
	h := proxies.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = ClientAddr(r.Context())
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.1.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.5")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got != "203.0.113.5" {
		t.Errorf("ClientAddr in the handler = %q, want the address Of resolves", got)
	}
}

// countingStorage counts the writes a Limiter makes and keeps the last
// count the database returned.
type countingStorage struct {
	Storage
	writes, count int64
}

func (c *countingStorage) AddToRateLimitWindow(ctx context.Context, id string, by int64, expires time.Time) (int64, error) {
	n, err := c.Storage.AddToRateLimitWindow(ctx, id, by, expires)
	c.writes++
	c.count = n
	return n, err
}
