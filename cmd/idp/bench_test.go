package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"idp/database/databasetest"
	"idp/password"
)

// The token benchmarks drive the real server over loopback HTTP with the
// production argon2id parameters and 2048-bit keys; BenchmarkRS256Sign is
// the machine's signing rate measured the same way, so that
// grants/s × signatures per grant can be compared with it:
//
//	go test -run xxx -bench 'Grant|RS256' -benchtime 5s ./cmd/idp/

func benchServer(b *testing.B) *testServer {
	return benchServerOn(b, databasetest.SQLiteURL(b))
}

// benchEach runs fn as a sub-benchmark per database engine (SQLite, and
// MySQL and PostgreSQL when their variables are set), each on its own
// server.
func benchEach(b *testing.B, fn func(b *testing.B, s *testServer)) {
	for _, e := range databasetest.Engines(b) {
		b.Run(e.Name, func(b *testing.B) { fn(b, benchServerOn(b, e.NewURL(b))) })
	}
}

func benchServerOn(b *testing.B, dbURL string) *testServer {
	b.Helper()
	s := startServer(b, dbURL, func(c *config) {
		p := password.DefaultParams()
		c.Argon2MemoryKiB, c.Argon2Iterations = uint(p.Memory), uint(p.Iterations)
		c.RateLimitPerIP = 0
		c.LogLevel = 8 // errors only: logging is not what is measured
	})
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	return s
}

func benchPost(b *testing.B, client *http.Client, u string, form url.Values) map[string]any {
	res, err := client.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	if res.StatusCode != 200 {
		b.Fatalf("status %d: %v", res.StatusCode, m)
	}
	return m
}

func BenchmarkPasswordGrant(b *testing.B) {
	s := benchServer(b)
	form := url.Values{"grant_type": {"password"}, "client_id": {"mobile"}, "username": {"ada"},
		"password": {testPassword}, "scope": {"openid profile email offline_access"}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := &http.Client{}
		for pb.Next() {
			benchPost(b, client, s.URL+"/oauth2/token", form)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

func BenchmarkRefreshGrant(b *testing.B) {
	s := benchServer(b)
	b.SetParallelism(8) // 16 chains on 2 cores, as idp-load runs them
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := &http.Client{}
		// Each worker rotates its own chain, as a fleet of apps does.
		rt := benchPost(b, client, s.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"},
			"username": {"ada"}, "password": {testPassword}, "scope": {"openid profile email offline_access"}})["refresh_token"].(string)
		for pb.Next() {
			m := benchPost(b, client, s.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {rt}})
			rt = m["refresh_token"].(string)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "signatures/s")
}

func BenchmarkRS256Sign(b *testing.B) {
	s := benchServer(b)
	payload := []byte(`{"iss":"http://localhost:8080","sub":"1","aud":["http://localhost:8080"],"exp":1900000000,"iat":1800000000,"jti":"abcdefghijklmnopqrstuv","client_id":"mobile","scope":"openid profile email offline_access"}`)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.app.keys.Sign(payload, "at+jwt"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
}

// BenchmarkUserinfo measures the server's own cost of an authenticated read
// (signature check, revocation check, user read, JSON) without the network,
// beside BenchmarkHealthz, the cost of a static answer through the same
// middleware.
func BenchmarkUserinfo(b *testing.B) {
	benchEach(b, func(b *testing.B, s *testServer) {
		tok := benchPost(b, http.DefaultClient, s.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"},
			"username": {"ada"}, "password": {testPassword}, "scope": {"openid profile email"}})["access_token"].(string)
		benchHandler(b, s, "/userinfo", tok)
	})
}

func BenchmarkHealthz(b *testing.B) {
	benchHandler(b, benchServer(b), "/healthz", "")
}

func benchHandler(b *testing.B, s *testServer, path, bearer string) {
	h := s.app.handler()
	// Enough goroutines that a request waiting on the database leaves the
	// cores to another: the figure is throughput, not one request's latency.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkRefreshHandler is BenchmarkRefreshGrant without the network:
// the server's own cost of a refresh, for profiling.
func BenchmarkRefreshHandler(b *testing.B) {
	benchEach(b, benchRefreshHandler)
}

func benchRefreshHandler(b *testing.B, s *testServer) {
	h := s.app.handler()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rt := benchPost(b, http.DefaultClient, s.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"},
			"username": {"ada"}, "password": {testPassword}, "scope": {"openid profile email offline_access"}})["refresh_token"].(string)
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(url.Values{
				"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {rt}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var m map[string]any
			json.Unmarshal(rec.Body.Bytes(), &m)
			if rec.Code != 200 {
				b.Fatalf("%d %v", rec.Code, m)
			}
			rt = m["refresh_token"].(string)
		}
	})
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "signatures/s")
}
