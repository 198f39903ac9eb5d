package idp

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"time"
)

//go:embed api/openapi.yaml
var openAPI []byte

// OpenAPI returns api/openapi.yaml: the OpenAPI 3 description of the whole
// HTTP surface. Each call returns a fresh copy, so no caller can change what
// the others see.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// OpenAPIContentType is the media type /openapi.yaml is served with
// (RFC 9512).
const OpenAPIContentType = "application/yaml"

// OpenAPIHandler serves the document as written, with a strong ETag (so a
// client that polls it pays one round trip when nothing changed) and a
// Cache-Control of an hour: the document changes only with the binary.
func OpenAPIHandler() http.Handler {
	body := OpenAPI()
	sum := sha256.Sum256(body)
	tag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", tag)
		h.Set("Content-Type", OpenAPIContentType)
		// ServeContent answers If-None-Match with 304 against the ETag.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}
