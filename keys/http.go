package keys

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// JWKSPath is where the public router serves the key set; the discovery
// document's jwks_uri names it.
const JWKSPath = "/.well-known/jwks.json"

// Mount adds GET and HEAD JWKSPath, served by JWKSHandler, to r.
func (m *Manager) Mount(r chi.Router) {
	h := m.JWKSHandler()
	r.Method(http.MethodGet, JWKSPath, h)
	r.Method(http.MethodHead, JWKSPath, h)
}

// JWKSHandler serves the key set at the jwks_uri. It writes the prepared
// bytes with a strong ETag and a max-age short enough that a verifier's
// cached set holds every next key before it signs (see JWKSMaxAge). The
// content type is application/json rather than RFC 7517's
// application/jwk-set+json because some client libraries refuse the latter.
func (m *Manager) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		body, etag := m.JWKS()
		h := w.Header()
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(m.JWKSMaxAge().Seconds())))
		h.Set("ETag", etag)
		h.Set("Content-Type", "application/json")
		// ServeContent answers If-None-Match with 304 against the ETag set
		// above, and HEAD without a body.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}
