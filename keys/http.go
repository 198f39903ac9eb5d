package keys

import (
	"net/http"
	"strconv"
	"strings"
)

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
		if etagMatches(r.Header.Values("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
}

// etagMatches applies If-None-Match, which uses the weak comparison (RFC 9110
// §13.1.2): a W/ prefix is ignored, and * matches any current representation.
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for tag := range strings.SplitSeq(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
