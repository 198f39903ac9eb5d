package oauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"idp"
)

// discoveryDocument completes the embedded metadata for issuer: it sets
// "issuer", turns every endpoint path into an absolute URL, and lists the
// grants and scopes of the token service's registry (not copies in the
// template, which could drift).
func discoveryDocument(issuer string, grants, scopes, locales []string) ([]byte, error) {
	raw, err := idp.WellKnown.ReadFile(".well-known/openid-configuration.json")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("oauth: discovery template: %w", err)
	}
	for _, k := range []string{"grant_types_supported", "scopes_supported", "ui_locales_supported"} {
		if _, ok := doc[k]; ok {
			return nil, fmt.Errorf("oauth: discovery template: %s is generated, not templated", k)
		}
	}
	doc["issuer"] = issuer
	doc["grant_types_supported"] = grants
	doc["scopes_supported"] = scopes
	if len(locales) > 0 {
		doc["ui_locales_supported"] = locales
	}
	for k, v := range doc {
		if p, ok := v.(string); ok && (strings.HasSuffix(k, "_endpoint") || strings.HasSuffix(k, "_uri")) && strings.HasPrefix(p, "/") {
			doc[k] = issuer + p
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// etag is a strong entity tag of a prepared body.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

// servePrepared serves prepared bytes with an ETag; http.ServeContent
// answers If-None-Match with 304, so clients that poll the document pay one
// round trip.
func servePrepared(w http.ResponseWriter, r *http.Request, body []byte, tag, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", tag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	servePrepared(w, r, s.discovery, s.discoveryTag, "public, max-age=3600")
}
