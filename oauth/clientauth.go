package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
)

// AuthenticateClient identifies the client of a request the way the token
// endpoint does (RFC 6749 §2.3.1): HTTP Basic or client_id and client_secret
// in the body for a confidential client, client_id alone for a public one.
// Errors are fosite errors (invalid_client, invalid_request).
func (s *Server) AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if form.Get("client_assertion") != "" || form.Get("client_assertion_type") != "" {
		return nil, fosite.ErrInvalidClient.WithHint("Client assertions are not supported.")
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		if form.Get("client_secret") != "" {
			return nil, fosite.ErrInvalidRequest.WithHint("Use one client authentication method, not two.")
		}
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fosite.ErrInvalidClient.WithHint("The Basic credentials are not form-encoded.")
		}
		if b := form.Get("client_id"); b != "" && b != id {
			return nil, fosite.ErrInvalidRequest.WithHint("client_id in the body differs from the Basic credentials.")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, fosite.ErrInvalidClient.WithHint("The client is not identified: send client_id, or HTTP Basic credentials.")
	}
	c, err := s.clients.Get(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
	} else if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if c.IsPublic() {
		if secret != "" {
			return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
		}
		return c, nil
	}
	if secret == "" || !secretMatches(c, secret) {
		return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
	}
	return c, nil
}
