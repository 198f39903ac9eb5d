package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"

	"idp"
)

// The end-to-end tests check every response that passes through
// testServer.do against api/openapi.yaml: the route must be in the document
// (or be one the server does not have either: 404 or 405), the status must be
// documented for it, the headers it declares must be there, and the body
// must match the schema of its content type. Successful requests are checked
// against the document too, so that it never describes a request the server
// would refuse.
//
// The validator is stricter than the published document in one way: every
// object of a response body is closed (additionalProperties: false), so that
// a field the code sends but the document does not name fails a test. The
// document itself stays open, because clients must ignore fields they do not
// know (additive changes are how the API grows).

func init() {
	// Bodies kin-openapi has no decoder for: taken as opaque bytes or text.
	for _, ct := range []string{"image/jpeg", "image/png", "image/gif", "image/webp"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	// Formats the document uses that kin-openapi checks only when told how.
	openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
	openapi3.DefineStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			return fmt.Errorf("%q is not an absolute URI", s)
		}
		return nil
	}))
}

// loadOpenAPI loads and validates the document as the binary embeds it.
func loadOpenAPI(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(idp.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// openAPIValidator is the document prepared for checking responses.
type openAPIValidator struct {
	doc    *openapi3.T
	router routers.Router
}

var theOpenAPIValidator = sync.OnceValues(func() (*openAPIValidator, error) {
	doc, err := loadOpenAPI(context.Background())
	if err != nil {
		return nil, err
	}
	// Test servers listen on random ports: match paths on any host.
	doc.Servers = nil
	closeResponseObjects(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &openAPIValidator{doc: doc, router: router}, nil
})

// closeResponseObjects sets additionalProperties: false on every object
// schema with properties that a response body uses and that says nothing
// about additional properties itself. Composed schemas (allOf, oneOf, anyOf)
// are left alone: closing their parts would refuse the other parts' fields.
func closeResponseObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Type.Is("object") && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil &&
			len(s.AllOf)+len(s.OneOf)+len(s.AnyOf) == 0 {
			s.AdditionalProperties.Has = new(false)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, res := range op.Responses.Map() {
				if res.Value == nil {
					continue
				}
				for _, mt := range res.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// checkOpenAPI reports, as a test error, a response that does not agree with
// the document. res.Request is the request that got this response (after
// any redirect the client followed).
func (s *testServer) checkOpenAPI(res *http.Response, body []byte) {
	s.t.Helper()
	if err := openAPIMismatch(res.Request, res.StatusCode, res.Header, body); err != nil {
		s.t.Errorf("OpenAPI: %s %s answered %d: %v", res.Request.Method, res.Request.URL.Path, res.StatusCode, err)
	}
}

// openAPIMismatch says how a response disagrees with the document, or nil.
func openAPIMismatch(req *http.Request, status int, header http.Header, body []byte) error {
	v, err := theOpenAPIValidator()
	if err != nil {
		return err
	}
	ctx := context.Background()
	route, params, err := v.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound) && status == http.StatusNotFound,
		errors.Is(err, routers.ErrMethodNotAllowed) && status == http.StatusMethodNotAllowed:
		return nil // neither the document nor the server has it
	case err != nil:
		return fmt.Errorf("the document has no such operation (%v)", err)
	}
	// ValidateResponse lets some statuses (304, 301, 307, 308) and HEAD
	// through unchecked; each must still be documented.
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, req.Method, route.Path)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	// A request the server accepted must be one the document allows.
	if status < 300 && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) {
		again := req.Clone(ctx)
		if req.GetBody != nil {
			if again.Body, err = req.GetBody(); err != nil {
				return err
			}
		}
		reqIn := *in
		reqIn.Request = again
		if err := openapi3filter.ValidateRequest(ctx, &reqIn); err != nil {
			return fmt.Errorf("the server accepted a request the document does not allow: %w", err)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	})
	if err != nil {
		return fmt.Errorf("%w (body %.300q)", err, body)
	}
	return nil
}

// TestOpenAPIDocument checks that api/openapi.yaml is a valid OpenAPI 3
// document, that it describes exactly the routes the server has, and that
// the two error styles are kept apart.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := loadOpenAPI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi: %s", doc.OpenAPI)
	}

	// The routes of the real router, with the directory picture store (the
	// only one whose pictures the server serves itself).
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	served := map[string]bool{}
	err = chi.Walk(s.app.handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[method+" "+openAPIPath(route)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q missing or not unique", method, path, op.OperationID)
			}
			ids[op.OperationID] = true
			checkErrorStyle(t, method, path, op)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(served)) {
		if !documented[r] {
			t.Errorf("the server answers %s, which api/openapi.yaml does not document", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(documented)) {
		if !served[r] {
			t.Errorf("api/openapi.yaml documents %s, which the server does not have", r)
		}
	}
	if len(served) < 20 {
		t.Errorf("only %d routes found: %v", len(served), served)
	}

	// The server serves the document it embeds.
	r := s.get("/openapi.yaml", "")
	if r.status != 200 || !bytes.Equal(r.body, idp.OpenAPI()) || r.header.Get("Content-Type") != idp.OpenAPIContentType ||
		!strings.HasPrefix(r.header.Get("Cache-Control"), "public, max-age=") || r.header.Get("ETag") == "" {
		t.Errorf("GET /openapi.yaml: %d %v", r.status, r.header)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/openapi.yaml", nil)
	req.Header.Set("If-None-Match", r.header.Get("ETag"))
	if r := s.do(req); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("GET /openapi.yaml with its ETag: %d", r.status)
	}
	// A copy cannot change what the server serves.
	b := idp.OpenAPI()
	b[0] = 'X'
	if idp.OpenAPI()[0] == 'X' {
		t.Error("idp.OpenAPI hands out its own bytes")
	}
}

// openAPIPath turns a chi route pattern into the document's path: the same
// {name} parameters; the picture store's wildcard is a two-level key.
func openAPIPath(route string) string {
	if route == "/pictures/*" {
		return "/pictures/{dir}/{file}"
	}
	return route
}

// checkErrorStyle holds the document to the contract's two error styles:
// RFC 9457 problems under /v1, RFC 6749 errors at the OAuth endpoints.
func checkErrorStyle(t *testing.T, method, path string, op *openapi3.Operation) {
	t.Helper()
	for code, res := range op.Responses.Map() {
		if code < "400" || res.Value == nil {
			continue
		}
		for ct, mt := range res.Value.Content {
			ref := ""
			if mt.Schema != nil {
				ref = mt.Schema.Ref
			}
			switch {
			case strings.HasPrefix(path, "/v1/"):
				if ct != "application/problem+json" || ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s %s: %s %s, want a Problem as application/problem+json", method, path, code, ct, ref)
				}
			case strings.HasPrefix(path, "/oauth2/") || path == "/userinfo":
				if ct != "application/json" || ref != "#/components/schemas/OAuthError" {
					t.Errorf("%s %s %s: %s %s, want an OAuthError as application/json", method, path, code, ct, ref)
				}
			}
		}
	}
}
