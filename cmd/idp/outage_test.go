package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent/user"
)

// tcpProxy forwards connections to upstream until it is cut: then every
// open connection is closed and new ones are dropped at once, as when a
// database host goes away.
type tcpProxy struct {
	ln       net.Listener
	upstream string
	cut      atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, upstream string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, up)
		go func() { io.Copy(up, c); up.Close(); c.Close() }()
		go func() { io.Copy(c, up); c.Close(); up.Close() }()
	}
}

func (p *tcpProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// Cut drops every connection and refuses new ones until Restore.
func (p *tcpProxy) Cut() {
	p.cut.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) Restore() { p.cut.Store(false) }

// TestDatabaseOutage cuts the database away under load: answers during the
// cut are 503 with Retry-After in the endpoint's own format, quickly; service
// resumes by itself; every signup acknowledged before, during or after the
// cut is in the database afterwards.
func TestDatabaseOutage(t *testing.T) {
	ran := false
	for _, e := range databasetest.Engines(t) {
		if e.Name == "sqlite" {
			continue // a file has no connection to lose
		}
		ran = true
		t.Run(e.Name, func(t *testing.T) { testDatabaseOutage(t, e.NewURL(t)) })
	}
	if !ran {
		t.Skipf("needs a MySQL or PostgreSQL server (%s, %s); CI sets them", databasetest.MySQLEnv, databasetest.PostgresEnv)
	}
}

func testDatabaseOutage(t *testing.T, direct string) {
	u, _ := url.Parse(direct)
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	s := startServer(t, u.String(), func(c *config) {
		c.RequestTimeout = 3 * time.Second
		c.HashQueueTimeout = time.Minute
		c.RateLimitPerIP = 0
	})
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)

	var (
		mu       sync.Mutex
		acked    []string
		statuses = map[string]int{}
		seq      atomic.Int64
		phase    atomic.Value // "before", "cut", "after"
	)
	phase.Store("before")
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				p := phase.Load().(string)
				start := time.Now()
				var r response
				if w%2 == 0 {
					name := fmt.Sprintf("load%d", seq.Add(1))
					r = s.signupJSON(signupBody(name, name+"@example.com"))
					if r.status == 201 {
						mu.Lock()
						acked = append(acked, name)
						mu.Unlock()
					}
				} else {
					r = s.login("ada", testPassword)
				}
				took := time.Since(start)
				mu.Lock()
				statuses[fmt.Sprintf("%s %d", p, r.status)]++
				mu.Unlock()
				if r.status != 200 && r.status != 201 {
					if r.status != 503 || r.header.Get("Retry-After") == "" {
						t.Errorf("%s: %d %s", p, r.status, r.body)
					}
					if w%2 == 0 {
						problemOf(t, r)
					} else if r.json(t)["error"] != "temporarily_unavailable" {
						t.Errorf("token endpoint during the outage: %s", r.body)
					}
				}
				if took > 10*time.Second {
					t.Errorf("a request took %v during %s", took, p)
				}
			}
		})
	}

	time.Sleep(500 * time.Millisecond)
	phase.Store("cut")
	proxy.Cut()
	time.Sleep(1500 * time.Millisecond)
	if r := s.get("/readyz", ""); r.status != 503 {
		t.Errorf("/readyz during the outage: %d", r.status)
	}
	if r := s.get("/healthz", ""); r.status != 200 {
		t.Errorf("/healthz during the outage: %d", r.status)
	}
	proxy.Restore()
	phase.Store("after")
	deadline := time.Now().Add(20 * time.Second)
	for s.get("/readyz", "").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready 20 s after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	t.Logf("answers by phase: %v", statuses)
	if statuses["cut 503"] == 0 {
		t.Error("no request met the outage: the test proved nothing")
	}
	if statuses["after 201"] == 0 || statuses["after 200"] == 0 {
		t.Error("service did not resume after the outage")
	}

	// Every acknowledged signup is there, read past the proxy.
	db, err := database.Open(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range acked {
		if ok, err := db.Ent.User.Query().Where(user.Username(name)).Exist(context.Background()); err != nil || !ok {
			t.Errorf("acknowledged signup %s is missing (%v)", name, err)
		}
	}
}

// TestGracefulShutdown stops the server while a request is in flight (its
// body still arriving): the request completes, new connections are refused,
// and the background work stops.
func TestGracefulShutdown(t *testing.T) {
	active := make(chan struct{}, 1)
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", func(c *config) {
		c.connState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateActive {
				select {
				case active <- struct{}{}:
				default:
				}
			}
		}
	})
	s.mobile()

	// A client that sends its request slowly: headers and half the body.
	body, _ := json.Marshal(signupBody("late", "late@example.com"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: idp\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	conn.Write(body[:len(body)/2])
	<-active // the server is handling it

	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }()
	// Shutdown closes the listener first; wait for that.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections while shutting down")
		}
	}
	select {
	case <-stopped:
		t.Fatal("the server stopped with a request in flight")
	default:
	}
	conn.Write(body[len(body)/2:])
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated || !strings.Contains(string(answer), `"username":"late"`) {
		t.Errorf("the in-flight request: %d %s", res.StatusCode, answer)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop after its last request")
	}
}
