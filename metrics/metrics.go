// Package metrics defines what idp exports to Prometheus: HTTP requests by
// route and status, token grants by type and outcome, failed logins and
// lock-outs, mail delivery, signing-key age, and the database pool.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"idp/mail"
)

const namespace = "idp"

// Metrics holds idp's collectors in a registry of its own (no global
// state), served by Handler.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	grants        *prometheus.CounterVec
	loginFailures prometheus.Counter
	lockouts      prometheus.Counter
	authorize     *prometheus.CounterVec
	logins        *prometheus.CounterVec
	account       *prometheus.CounterVec
}

// New returns the collectors, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "token_grants_total",
			Help: "Token endpoint requests by grant type and outcome (success or the RFC 6749 error code).",
		}, []string{"grant_type", "outcome"}),
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "login_failures_total",
			Help: "Failed password checks: wrong password or unknown login.",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "login_lockouts_total",
			Help: "Lock-outs imposed after repeated failed logins.",
		}),
		authorize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "authorize_requests_total",
			Help: "Authorization requests by outcome: code, a page shown (login, consent) or the RFC 6749 error code.",
		}, []string{"outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "browser_logins_total",
			Help: "Sign-in page logins by method (pwd) and outcome (success, invalid, locked, csrf, busy, error).",
		}, []string{"method", "outcome"}),
		account: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "account_events_total",
			Help: "Account lifecycle events: email_verified, email_change_requested, email_changed, password_changed, session_ended, account_exported, account_erased, and the like.",
		}, []string{"event"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.grants, m.loginFailures, m.lockouts, m.authorize, m.logins, m.account,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest records one HTTP request. route is the router's pattern
// (never the raw path, whose ids would make the label set unbounded).
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	// net/http takes any token as a method: a label of every one a client
	// sends would grow the series without bound.
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// Grant records a token endpoint request.
func (m *Metrics) Grant(grantType, outcome string) {
	m.grants.WithLabelValues(grantType, outcome).Inc()
}

// Authorize records the outcome of an authorization request.
func (m *Metrics) Authorize(outcome string) { m.authorize.WithLabelValues(outcome).Inc() }

// BrowserLogin records a sign-in page login.
func (m *Metrics) BrowserLogin(method, outcome string) {
	m.logins.WithLabelValues(method, outcome).Inc()
}

// AccountEvent records an account lifecycle event (a fixed name, never
// anything a user chose).
func (m *Metrics) AccountEvent(event string) { m.account.WithLabelValues(event).Inc() }

// LoginFailed records a failed password check.
func (m *Metrics) LoginFailed() { m.loginFailures.Inc() }

// LockedOut records a lock-out.
func (m *Metrics) LockedOut() { m.lockouts.Inc() }

// WatchDB exports the connection pool's statistics.
func (m *Metrics) WatchDB(db *sql.DB) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, "idp"))
}

// KeyClock is what the signing keys tell about rotation (*keys.Manager).
type KeyClock interface {
	ActiveSince() time.Time
	NextRotation() time.Time
}

// WatchKeys exports the active signing key's age and the time to the next
// rotation, read when scraped.
func (m *Metrics) WatchKeys(k KeyClock) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "signing_key_age_seconds",
			Help: "Age of the active signing key.",
		}, func() float64 { return since(k.ActiveSince()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "signing_key_rotation_in_seconds",
			Help: "Seconds until the next signing key takes over (negative when overdue).",
		}, func() float64 { return -since(k.NextRotation()) }),
	)
}

func since(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Seconds()
}

// Outbox is what mail delivery tells (*mail.Outbox).
type Outbox interface {
	Stats(ctx context.Context) (mail.Stats, error)
}

// WatchOutbox exports mail delivery: messages waiting, the age of the
// oldest, and this process's sent, failed and retried counts.
func (m *Metrics) WatchOutbox(o Outbox) {
	m.reg.MustRegister(&outboxCollector{o: o})
}

type outboxCollector struct{ o Outbox }

var (
	outboxPending = prometheus.NewDesc(namespace+"_mail_pending", "Mails waiting to be sent (all processes).", nil, nil)
	outboxAge     = prometheus.NewDesc(namespace+"_mail_oldest_pending_seconds", "Age of the oldest mail waiting to be sent.", nil, nil)
	outboxSent    = prometheus.NewDesc(namespace+"_mail_sent_total", "Mails sent by this process.", nil, nil)
	outboxFailed  = prometheus.NewDesc(namespace+"_mail_failed_total", "Mails given up on by this process.", nil, nil)
	outboxRetried = prometheus.NewDesc(namespace+"_mail_retried_total", "Failed send attempts rescheduled by this process.", nil, nil)
)

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxPending
	ch <- outboxAge
	ch <- outboxSent
	ch <- outboxFailed
	ch <- outboxRetried
}

// Collect reads the outbox when scraped.
func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.o.Stats(ctx)
	if err != nil {
		return // the series go missing for a scrape, which alerts can see
	}
	ch <- prometheus.MustNewConstMetric(outboxPending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(outboxAge, prometheus.GaugeValue, s.OldestPending.Seconds())
	ch <- prometheus.MustNewConstMetric(outboxSent, prometheus.CounterValue, float64(s.Sent))
	ch <- prometheus.MustNewConstMetric(outboxFailed, prometheus.CounterValue, float64(s.Failed))
	ch <- prometheus.MustNewConstMetric(outboxRetried, prometheus.CounterValue, float64(s.Retried))
}
