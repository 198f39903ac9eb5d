package mail

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"
)

// DefaultSendGridHost is SendGrid's global API host.
const DefaultSendGridHost = "https://api.sendgrid.com"

const sendGridEndpoint = "/v3/mail/send"

// SendGrid sends messages through SendGrid's v3 mail send API.
type SendGrid struct {
	apiKey string
	from   Address
	host   string
	client *http.Client
}

// SendGridOption configures NewSendGrid.
type SendGridOption func(*SendGrid)

// WithSendGridHost sends to another API host than DefaultSendGridHost: the EU
// region's https://api.eu.sendgrid.com, or a test server.
func WithSendGridHost(host string) SendGridOption {
	return func(s *SendGrid) { s.host = strings.TrimRight(host, "/") }
}

// WithHTTPClient makes SendGrid use c. The library's own default client has
// no timeout, which would let one stuck request outlive the outbox's lease.
func WithHTTPClient(c *http.Client) SendGridOption {
	return func(s *SendGrid) { s.client = c }
}

// WithTimeout bounds each request, connection and response included, to d
// (default 15 seconds). It replaces a client set by an earlier
// WithHTTPClient.
func WithTimeout(d time.Duration) SendGridOption {
	return func(s *SendGrid) { s.client = &http.Client{Timeout: d} }
}

// NewSendGrid returns a Sender that sends from `from` with the API key
// apiKey.
func NewSendGrid(apiKey string, from Address, opts ...SendGridOption) *SendGrid {
	s := &SendGrid{
		apiKey: apiKey,
		from:   from,
		host:   DefaultSendGridHost,
		client: &http.Client{Timeout: 15 * time.Second},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StatusError is SendGrid's answer when it did not accept a message. It
// wraps ErrPermanent when SendGrid refused the request itself (bad payload,
// bad key, too large) rather than failing to handle it.
type StatusError struct {
	StatusCode int
	// Detail is SendGrid's error messages, which describe the request's
	// fields but never repeat their contents.
	Detail string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("sendgrid: status %d", e.StatusCode)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap makes errors.Is(err, ErrPermanent) true for permanent failures.
func (e *StatusError) Unwrap() error {
	if permanentStatus(e.StatusCode) {
		return ErrPermanent
	}
	return nil
}

// permanentStatus tells the 4xx answers that the same request would get
// again. 408 and 429 are the client errors that pass with time.
func permanentStatus(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// Send sends m. A 2xx answer (SendGrid's is 202 Accepted) means sent; 408,
// 429, 5xx and network errors are temporary; other 4xx wrap ErrPermanent.
func (s *SendGrid) Send(ctx context.Context, m Message) error {
	var content []*sgmail.Content
	// SendGrid requires text/plain first when both are present.
	if m.Text != "" {
		content = append(content, sgmail.NewContent("text/plain", m.Text))
	}
	if m.HTML != "" {
		content = append(content, sgmail.NewContent("text/html", m.HTML))
	}
	v3 := sgmail.NewV3MailInit(
		sgmail.NewEmail(s.from.Name, s.from.Email), m.Subject,
		sgmail.NewEmail("", m.To), content...)
	body, err := json.Marshal(v3)
	if err != nil {
		return fmt.Errorf("sendgrid: encode: %w", err)
	}

	req := sendgrid.GetRequest(s.apiKey, sendGridEndpoint, s.host)
	req.Method = rest.Post
	req.Body = body
	c := rest.Client{HTTPClient: s.client}
	resp, err := c.SendWithContext(ctx, req)
	if err != nil {
		// Network errors and timeouts: temporary. A *url.Error names the
		// URL, which holds no secret (the key travels in a header).
		return fmt.Errorf("sendgrid: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{StatusCode: resp.StatusCode, Detail: sendGridErrors(resp.Body)}
}

// sendGridErrors extracts the messages of a v3 error answer,
// {"errors":[{"message":…,"field":…}]}, shortened for logs and last_error.
func sendGridErrors(body string) string {
	var v struct {
		Errors []struct {
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(body), &v) != nil {
		return ""
	}
	var parts []string
	for _, e := range v.Errors {
		p := e.Message
		if e.Field != "" {
			p = e.Field + ": " + p
		}
		parts = append(parts, p)
	}
	return truncate(strings.Join(parts, "; "), 200)
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var _ Sender = (*SendGrid)(nil)
