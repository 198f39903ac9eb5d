package main

import (
	"idp/database/databasetest"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /metrics of the operations listener into name → label set →
// value.
func scrape(t *testing.T, s *testServer) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.app.opsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the value of the series of family name with exactly these labels
// (a subset match); 0 when absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func TestMetricsFollowAFlow(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	s.createUser("ada", "ada@example.com", testPassword)
	before := scrape(t, s)

	s.login("ada", testPassword)
	s.login("ada", "wrong password 1")
	for range 5 {
		s.login("bob", "wrong password 2") // unknown login: locks at the 5th
	}
	s.forgot("ada")
	waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", "reset code", 1)

	after := scrape(t, s)
	delta := func(name string, labels ...string) float64 {
		return value(after, name, labels...) - value(before, name, labels...)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"idp_token_grants_total", []string{"grant_type", "password", "outcome", "success"}, 1},
		{"idp_token_grants_total", []string{"grant_type", "password", "outcome", "invalid_grant"}, 6},
		{"idp_login_failures_total", nil, 6},
		{"idp_login_lockouts_total", nil, 1},
		{"idp_http_requests_total", []string{"route", "/oauth2/token", "method", "POST", "status", "200"}, 1},
		{"idp_http_requests_total", []string{"route", "/oauth2/token", "method", "POST", "status", "400"}, 6},
		{"idp_http_request_duration_seconds", []string{"route", "/oauth2/token"}, 7},
		{"idp_http_requests_total", []string{"route", "/v1/password/forgot", "status", "202"}, 1},
		{"idp_mail_sent_total", nil, 1},
	}
	for _, c := range checks {
		if got := delta(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v went up by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"idp_signing_key_age_seconds", "idp_signing_key_rotation_in_seconds", "idp_mail_pending",
		"go_sql_open_connections", "go_goroutines", "process_resident_memory_bytes"} {
		if after[name] == nil {
			t.Errorf("%s is not exported", name)
		}
	}
	if v := value(after, "idp_signing_key_rotation_in_seconds"); v <= 0 {
		t.Errorf("seconds to the next rotation = %v", v)
	}
	// Raw paths never become labels: ids would make the series unbounded.
	for _, m := range after["idp_http_requests_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "ada") {
				t.Errorf("a raw path as a label: %s", l.GetValue())
			}
		}
	}
}

// TestRequestMetricsBoundMethods: a method nobody routes is counted as
// "other", so clients cannot add series by inventing methods.
func TestRequestMetricsBoundMethods(t *testing.T) {
	s := startServer(t, databasetest.SQLiteURL(t))
	for _, m := range []string{"ZZZ1", "ZZZ2", "ZZZ3"} {
		req, _ := http.NewRequest(m, s.URL+"/healthz", nil)
		s.do(req)
	}
	fams := scrape(t, s)
	if got := value(fams, "idp_http_requests_total", "method", "other"); got != 3 {
		t.Errorf("requests with method other: %v, want 3", got)
	}
	for _, f := range []string{"idp_http_requests_total", "idp_http_request_duration_seconds"} {
		for _, m := range fams[f].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "method" && strings.HasPrefix(l.GetValue(), "ZZZ") {
					t.Errorf("%s has a series for method %q", f, l.GetValue())
				}
			}
		}
	}
}
