package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"idp/oauth"
	"idp/passkey/passkeytest"
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
	openapi3filter.RegisterBodyDecoder("text/css", openapi3filter.PlainBodyDecoder)
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
	// A response documented without a body must have none: kin-openapi
	// would let any body through.
	if res := route.Operation.Responses.Status(status).Value; res != nil && len(res.Content) == 0 && len(body) > 0 {
		return fmt.Errorf("status %d of %s %s is documented without a body, but has one (%s)", status, req.Method, route.Path, header.Get("Content-Type"))
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
	// only one whose pictures the server serves itself), and with passkeys
	// on (an issuer whose host is a name).
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", localhostIssuer)
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
	switch route {
	case "/pictures/*":
		return "/pictures/{dir}/{file}"
	case "/pages/*":
		return "/pages/style.css"
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
			case slices.Contains(op.Tags, "signin"):
				// The browser's endpoints answer with pages.
				if ct != "text/html" {
					t.Errorf("%s %s %s: %s, want an HTML page", method, path, code, ct)
				}
			case strings.HasPrefix(path, "/oauth2/") || path == "/userinfo":
				if ct != "application/json" || ref != "#/components/schemas/OAuthError" {
					t.Errorf("%s %s %s: %s %s, want an OAuthError as application/json", method, path, code, ct, ref)
				}
			}
		}
	}
}

// TestOpenAPIValidatorCatchesMismatches makes sure the check in
// testServer.do would fail a test for each kind of drift.
func TestOpenAPIValidatorCatchesMismatches(t *testing.T) {
	req := func(method, path string) *http.Request {
		r, _ := http.NewRequest(method, "http://127.0.0.1:1"+path, nil)
		return r
	}
	jsonHeader := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
	problemHeader := http.Header{"Content-Type": {"application/problem+json"}, "Www-Authenticate": {`Bearer error="invalid_token"`}}
	profile := `{"id":1,"username":"ada","email":"ada@example.com","email_verified":false,"first_name":"Ada","last_name":"Lovelace","gender":"female",` +
		`"picture_url":null,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"`
	for _, c := range []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"a valid profile", req("GET", "/v1/profile"), 200, jsonHeader, profile + `}`, true},
		{"a missing field", req("GET", "/v1/profile"), 200, jsonHeader, strings.Replace(profile, `"email":"ada@example.com",`, "", 1) + `}`, false},
		{"an undocumented field", req("GET", "/v1/profile"), 200, jsonHeader, profile + `,"password_hash":"x"}`, false},
		{"a wrong type", req("GET", "/v1/profile"), 200, jsonHeader, strings.Replace(profile, `"id":1`, `"id":"1"`, 1) + `}`, false},
		{"a bad timestamp", req("GET", "/v1/profile"), 200, jsonHeader, strings.Replace(profile, `"2026-01-02T03:04:05Z"`, `"yesterday"`, 1) + `}`, false},
		{"a missing required header", req("GET", "/v1/profile"), 200, http.Header{"Content-Type": {"application/json"}}, profile + `}`, false},
		{"an undocumented content type", req("GET", "/v1/profile"), 200, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"no-store"}}, profile + `}`, false},
		{"a documented error", req("GET", "/v1/profile"), 401, problemHeader, `{"type":"https://idp.dev/problems/invalid-token","title":"Invalid token","status":401}`, true},
		{"an OAuth error where a problem belongs", req("GET", "/v1/profile"), 401, problemHeader, `{"error":"invalid_token"}`, false},
		{"an undocumented status", req("GET", "/v1/profile"), 418, jsonHeader, `{}`, false},
		{"an undocumented 304", req("GET", "/v1/profile"), 304, http.Header{}, ``, false},
		{"a body where none is documented", req("DELETE", "/v1/profile/picture"), 204, http.Header{"Content-Type": {"application/json"}}, `{}`, false},
		{"no body where none is documented", req("DELETE", "/v1/profile/picture"), 204, http.Header{}, ``, true},
		{"an undocumented route", req("GET", "/v1/secret"), 200, jsonHeader, `{}`, false},
		{"an undocumented method", req("DELETE", "/v1/users/stats"), 204, http.Header{}, ``, false},
		{"a 404 for an unknown path", req("GET", "/nowhere"), 404, http.Header{"Content-Type": {"text/plain"}}, "404 page not found\n", true},
		{"a 405 for an unknown method", req("PUT", "/oauth2/token"), 405, http.Header{}, "", true},
		{"stats with an extra count", req("GET", "/v1/users/stats"), 200, jsonHeader, `{"user_ids":[],"count_female":0,"count_male":0,"count_unspecified":0,"count_other":0}`, false},
	} {
		err := openAPIMismatch(c.req, c.status, c.header, []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: got %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestOpenAPIEveryOperation sends a request to every operation of the
// document through testServer.do, so that each is checked against the
// document at least once, success answers included.
func TestOpenAPIEveryOperation(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	v, err := theOpenAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	see := func(req *http.Request) {
		if route, _, err := v.router.FindRoute(req); err == nil {
			seen[route.Operation.OperationID] = true
		}
	}
	send := func(method, path, bearer, contentType string, body io.Reader, header ...string) response {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, body)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		see(req)
		return s.do(req)
	}
	want := func(r response, status int, what string) response {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: %d, want %d: %s", what, r.status, status, r.body)
		}
		return r
	}
	form := func(path string, values url.Values, user, pass string) response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, nil)
		see(req)
		return s.postForm(path, values, user, pass)
	}

	// Discovery, keys, this document: each also answers its ETag with 304.
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/.well-known/jwks.json", "/openapi.yaml"} {
		r := want(send("GET", path, "", "", nil), 200, path)
		want(send("GET", path, "", "", nil, "If-None-Match", r.header.Get("ETag")), 304, path+" with its ETag")
	}
	if h := want(send("HEAD", "/.well-known/jwks.json", "", "", nil), 200, "HEAD jwks"); h.header.Get("ETag") == "" || len(h.body) != 0 {
		t.Errorf("HEAD jwks: ETag %q, body %q", h.header.Get("ETag"), h.body)
	}
	// The change-password redirect, seen without following it.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/.well-known/change-password", nil)
	see(req)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if err := openAPIMismatch(req, res.StatusCode, res.Header, body); err != nil || res.StatusCode != http.StatusFound {
		t.Errorf("change-password: %d %v", res.StatusCode, err)
	}
	want(send("GET", "/password-reset", "", "", nil), 200, "password reset page")

	// Sign up by JSON and with a picture.
	b, _ := json.Marshal(signupBody("ada", "ada@example.com"))
	signup := want(send("POST", "/v1/users", "", "application/json", bytes.NewReader(b)), 201, "JSON signup")
	mp, ct := multipartBody(signupBody("bob", "bob@example.com"), testJPEG(t, 40, 30), "me.jpg")
	want(send("POST", "/v1/users", "", ct, mp), 201, "multipart signup")
	var created struct {
		User   struct{ ID int64 }
		Tokens struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
	}
	if err := json.Unmarshal(signup.body, &created); err != nil {
		t.Fatal(err)
	}

	// The token endpoint's three grants, introspection, userinfo, revocation.
	tok := want(form("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"}, "username": {"ADA"},
		"password": {testPassword}, "scope": {"openid profile email offline_access"}}, "", ""), 200, "password grant").json(t)
	at := tok["access_token"].(string)
	want(form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {tok["refresh_token"].(string)}}, "", ""), 200, "refresh")
	secret := s.createClient(newConfidential("reports"))
	svc := want(form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"users:stats"}}, "reports", secret), 200, "client_credentials").json(t)
	want(form("/oauth2/introspect", url.Values{"token": {at}}, "reports", secret), 200, "introspection")
	want(send("GET", "/userinfo", at, "", nil), 200, "GET userinfo")
	want(send("POST", "/userinfo", at, "", nil), 200, "POST userinfo")
	want(form("/oauth2/revoke", url.Values{"token": {created.Tokens.RefreshToken}, "client_id": {"mobile"}}, "", ""), 200, "revocation")

	// The profile and its picture.
	want(send("GET", "/v1/profile", at, "", nil), 200, "GET profile")
	want(send("PATCH", "/v1/profile", at, "application/json", strings.NewReader(`{"last_name":"Byron","gender":"unspecified"}`)), 200, "PATCH profile")
	mp, ct = multipartBody(nil, testPNG(t, 20, 20), "me.png")
	want(send("PUT", "/v1/profile/picture", at, ct, mp), 200, "PUT picture, multipart")
	p := want(send("PUT", "/v1/profile/picture", at, "image/jpeg", bytes.NewReader(testJPEG(t, 30, 30))), 200, "PUT picture, raw").json(t)
	picURL, _ := p["picture_url"].(string)
	if !strings.HasPrefix(picURL, s.URL+"/pictures/") {
		t.Fatalf("picture_url %q", picURL)
	}
	path := strings.TrimPrefix(picURL, s.URL)
	pic := want(send("GET", path, "", "", nil), 200, "GET picture")
	want(send("GET", path, "", "", nil, "If-None-Match", pic.header.Get("ETag")), 304, "GET picture with its ETag")
	want(send("HEAD", path, "", "", nil), 200, "HEAD picture")
	want(send("DELETE", "/v1/profile/picture", at, "", nil), 204, "DELETE picture")
	want(send("GET", "/v1/users/stats", svc["access_token"].(string), "", nil), 200, "stats")

	// Email verification: a new code replaces the one mailed at signup.
	want(send("POST", "/v1/email/verify/resend", at, "", nil), 202, "resend verification")
	want(send("POST", "/v1/email/verify", at, "application/json", strings.NewReader(`{"code":"abcdefgh"}`)), 400, "verify with a wrong code")
	verifyCode := codeOf(t, waitForMail(t, func() []sentMail { return mailLog(t, s) }, "ada@example.com", verifySubject, 2)[1])
	want(send("POST", "/v1/email/verify", at, "application/json", strings.NewReader(`{"code":"`+verifyCode+`"}`)), 204, "verify")

	// Live sessions (another login of ada's, ended) and the export.
	other := want(form("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"}, "username": {"ada"},
		"password": {testPassword}, "scope": {"openid profile offline_access"}}, "", ""), 200, "another login").json(t)
	var live struct{ Sessions []struct{ ID string } }
	json.Unmarshal(want(send("GET", "/v1/sessions", other["access_token"].(string), "", nil), 200, "sessions").body, &live)
	want(send("DELETE", "/v1/sessions/rt_AAAAAAAAAAAAAAAAAAAAAA", at, "", nil), 404, "end an unknown session")
	want(send("DELETE", "/v1/sessions/"+live.Sessions[0].ID, at, "", nil), 204, "end a session")
	want(send("GET", "/v1/profile/export", at, "", nil), 200, "export")
	// Email and password change; the password change ends at's grant.
	want(send("POST", "/v1/email/change", at, "application/json",
		strings.NewReader(`{"new_email":"ada@new.example","password":"`+testPassword+`"}`)), 202, "email change")
	want(send("POST", "/v1/password/change", at, "application/json",
		strings.NewReader(`{"current_password":"`+testPassword+`","new_password":"yet another correct horse"}`)), 200, "password change")

	// Password reset: a mailed code (taken from the account service here).
	want(send("POST", "/v1/password/forgot", "", "application/json", strings.NewReader(`{"login":"ada"}`)), 202, "forgot")
	want(send("POST", "/v1/password/reset", "", "application/json",
		strings.NewReader(`{"login":"ada","code":"00000000","new_password":"another correct horse battery"}`)), 400, "reset with a wrong code")
	code, err := s.app.accounts.IssueResetCode(ctx, created.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	want(send("POST", "/v1/password/reset", "", "application/json",
		strings.NewReader(`{"login":"ada","code":"`+code+`","new_password":"another correct horse battery"}`)), 204, "reset")

	// The browser sign-in, as a browser without JavaScript walks it.
	wb := newWebBrowser(t, s)
	wb.onRequest = see
	pk := newPKCE()
	authz := authorizePath("mobile", loopbackCB, pk, nil)
	page := wb.get(authz) // authorize → login page
	if page.url.Path != "/login" {
		t.Fatalf("authorize: %d %s", page.status, page.url)
	}
	wb.get("/pages/style.css")
	q := wb.login(page, "ada", "another correct horse battery", false).location(t).Query() // → resume → client
	if q.Get("code") == "" {
		t.Fatalf("sign-in: %v", q)
	}
	req, _ = http.NewRequest(http.MethodPost, s.URL+"/oauth2/authorize", strings.NewReader(strings.SplitN(authz, "?", 2)[1]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if q := wb.do(req).location(t).Query(); q.Get("code") == "" {
		t.Fatalf("authorize by POST: %v", q)
	}
	rp := oauth.NewClient{ID: "rp", GrantTypes: []string{oauth.GrantAuthorizationCode}, Scopes: []string{"openid"}, RedirectURIs: []string{webCB}}
	if _, err := s.app.clients.Create(ctx, rp); err != nil {
		t.Fatal(err)
	}
	page = wb.get(authorizePath("rp", webCB, pk, url.Values{"scope": {"openid"}}))
	if page.url.Path != "/consent" {
		t.Fatalf("third-party client: %d %s", page.status, page.url)
	}
	wb.submit(page.form(t, "/consent"), nil, url.Values{"decision": {"deny"}})
	page = wb.get("/oauth2/logout")
	req, _ = http.NewRequest(http.MethodPost, s.URL+"/oauth2/logout", nil)
	see(req)
	wb.submit(page.form(t, "/oauth2/logout"), nil, url.Values{"decision": {"logout"}})

	// Its "Forgot password?" and "Create account" pages, in a browser
	// not signed in.
	nb := newWebBrowser(t, s)
	nb.onRequest = see
	page = nb.get(authorizePath("mobile", loopbackCB, newPKCE(), nil))
	forgot := nb.get(page.link(t, "/login/forgot"))
	nb.submit(forgot.form(t, "/login/forgot"), url.Values{"login": {"nobody"}}, nil) // → the code page
	signupPage := nb.get(page.link(t, "/login/signup"))
	nb.submitMultipart(signupPage.form(t, "/login/signup"), url.Values{"username": {"x"}}, "", nil) // 422

	// The account page, signed in through the sign-in.
	ab := newWebBrowser(t, s)
	ab.onRequest = see
	acct := ab.login(ab.get("/account"), "ada", "another correct horse battery", false)
	if acct.url.Path != "/account" {
		t.Fatalf("account page: %d %s", acct.status, acct.url)
	}
	ab.action(t, acct, "profile", url.Values{"first_name": {"Ada"}})

	// Erasure, of an account of its own.
	zoe := want(send("POST", "/v1/users", "", "application/json", strings.NewReader(`{"client_id":"mobile","username":"zoe","email":"zoe@example.com","password":"`+
		testPassword+`","first_name":"Zoe","last_name":"Z"}`)), 201, "signup to erase").json(t)
	zoeAT, _ := zoe["tokens"].(map[string]any)["access_token"].(string)
	want(send("DELETE", "/v1/profile", zoeAT, "application/json", strings.NewReader(`{"password":"`+testPassword+`"}`)), 204, "erase")

	// Passkeys, on a server whose issuer's host is a name (WebAuthn
	// refuses an IP address as RP ID).
	ps := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", localhostIssuer)
	ps.URL = ps.app.cfg.Issuer
	ps.mobile()
	ps.createUser("ada", "ada@example.com", testPassword)
	pat, _ := tokensOf(t, ps.passwordGrant("ada", testPassword))
	psend := func(method, path, contentType, body string) response {
		t.Helper()
		req, _ := http.NewRequest(method, ps.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+pat)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		see(req)
		return ps.do(req)
	}
	auth := &passkeytest.Authenticator{Origin: ps.app.cfg.Issuer}
	opts := want(psend("POST", "/v1/passkeys/registration", "", ""), 200, "passkey options")
	want(psend("POST", "/v1/passkeys", "application/json", `{"id":"x","rawId":"x","type":"public-key","response":{}}`), 400, "a malformed passkey")
	registration, err := auth.Create(opts.body)
	if err != nil {
		t.Fatal(err)
	}
	var passkeyJSON map[string]any
	json.Unmarshal(want(psend("POST", "/v1/passkeys", "application/json", strings.Replace(string(registration), "{", `{"name":"Laptop",`, 1)), 201, "create a passkey").body, &passkeyJSON)
	want(psend("GET", "/v1/passkeys", "", ""), 200, "list passkeys")
	want(psend("PATCH", "/v1/passkeys/"+passkeyJSON["id"].(string), "application/json", `{"name":"Phone"}`), 200, "rename a passkey")
	want(psend("PATCH", "/v1/passkeys/"+passkeyJSON["id"].(string), "application/json", `{"name":""}`), 422, "rename a passkey to nothing")
	want(psend("DELETE", "/v1/passkeys/unknown", "", ""), 404, "delete an unknown passkey")
	want(psend("DELETE", "/v1/passkeys/"+passkeyJSON["id"].(string), "", ""), 204, "delete a passkey")
	pb := newWebBrowser(t, ps)
	pb.onRequest = see
	loginForm := pb.get(authorizePath("mobile", loopbackCB, newPKCE(), nil)).form(t, "/login")
	req, _ = http.NewRequest(http.MethodPost, ps.URL+"/login/passkey/options", strings.NewReader(url.Values{"csrf_token": loginForm.fields["csrf_token"]}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	see(req)
	if r := pb.do(req); r.status != http.StatusOK {
		t.Errorf("passkey login options: %d %s", r.status, r.body)
	}
	// The account page's passkey endpoints, signed in.
	acctPage := pb.login(pb.get("/account"), "ada", testPassword, false)
	acctCSRF := acctPage.form(t, "/account").fields["csrf_token"]
	for _, c := range []struct {
		path   string
		values url.Values
		status int
	}{
		{"/account/passkeys/registration", url.Values{"csrf_token": acctCSRF}, http.StatusOK},
		{"/account/passkeys", url.Values{"csrf_token": acctCSRF, "credential": {`{"id":"x"}`}}, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, ps.URL+c.path, strings.NewReader(c.values.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		see(req)
		if r := pb.do(req); r.status != c.status {
			t.Errorf("%s: %d %.300s, want %d", c.path, r.status, r.body, c.status)
		}
	}

	// Operations.
	want(send("GET", "/healthz", "", "", nil), 200, "healthz")
	want(send("GET", "/readyz", "", "", nil), 200, "readyz")
	// The metrics are on the operations listener, not in this document.
	if r := s.get("/metrics", ""); r.status != 404 {
		t.Errorf("the public port serves /metrics: %d", r.status)
	}

	for path, item := range v.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !seen[op.OperationID] {
				t.Errorf("%s %s (%s) was not exercised", method, path, op.OperationID)
			}
		}
	}
}
