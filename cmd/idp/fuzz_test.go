package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database/databasetest"
	"idp/oauth"
	"idp/storage"
)

// The OAuth endpoints are fuzzed through a real server: one per fuzzing
// process, on SQLite, with the cheap Argon2 parameters and no rate limits.
// Each input is a raw request body, a Content-Type and an Authorization
// header, sent as is (chunked when asked). Whatever the input, the answer
// must be one the endpoint may give: never a 5xx other than 503, JSON with an
// "error" string whenever it is not 200, and Cache-Control: no-store.
//
// Inputs may hold placeholders, replaced before the request is sent, so that
// seeds and their mutations reach the paths behind valid credentials even
// though every run has fresh secrets and keys:
//
//	{password}  the password of the user "ada"
//	{secret}    the secret of the confidential client "reporter"
//	{basic}     base64 of "reporter:<secret>", for an Authorization header
//	{access}    a fresh access token of ada's, issued to "mobile"
//	{refresh}   a fresh refresh token of ada's, issued to "mobile"

const formType = "application/x-www-form-urlencoded"

// fuzzEnv is the server the OAuth fuzz targets talk to.
type fuzzEnv struct {
	s      *testServer
	http   *http.Client
	secret string
	mobile fosite.Client
	user   *storage.User
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	s := startServer(f, databasetest.SQLiteURL(f), func(c *config) {
		c.RateLimitPerIP = 0
		c.LogLevel = slog.LevelWarn // the access log of a long run would fill memory
	})
	s.mobile()
	e := &fuzzEnv{s: s, http: &http.Client{Timeout: 20 * time.Second}}
	e.user = s.createUser("ada", "ada@example.com", testPassword)
	c := newConfidential("reporter")
	c.Audience = []string{"https://api.example.com"}
	e.secret = s.createClient(c)
	var err error
	if e.mobile, err = s.app.clients.Get(context.Background(), "mobile"); err != nil {
		f.Fatal(err)
	}
	return e
}

// expand replaces the placeholders of in. Tokens are minted only when asked
// for: issuing one is a few database writes and an RSA signature.
func (e *fuzzEnv) expand(t *testing.T, in string) string {
	if !strings.Contains(in, "{") {
		return in
	}
	r := []string{
		"{password}", url.QueryEscape(testPassword),
		"{secret}", e.secret,
		"{basic}", base64.StdEncoding.EncodeToString([]byte("reporter:" + e.secret)),
	}
	if strings.Contains(in, "{access}") || strings.Contains(in, "{refresh}") {
		tokens, err := e.s.app.oauth.IssueTokens(context.Background(), e.mobile, e.user.ID,
			[]string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail, oauth.ScopeOfflineAccess})
		if err != nil {
			t.Fatalf("issue tokens: %v", err)
		}
		access, _ := tokens["access_token"].(string)
		refresh, _ := tokens["refresh_token"].(string)
		r = append(r, "{access}", access, "{refresh}", refresh)
	}
	return strings.NewReplacer(r...).Replace(in)
}

// headerValue drops the bytes net/http refuses to send in a header value
// (control characters other than tab): they never reach the server.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// post sends one fuzzed request to path and checks the properties every
// answer of the OAuth endpoints has. It returns the status and the decoded
// JSON body (nil when the body is empty).
func (e *fuzzEnv) post(t *testing.T, path, contentType, authorization string, body []byte, chunked bool) (int, map[string]any) {
	t.Helper()
	contentType = headerValue(contentType)
	authorization = headerValue(e.expand(t, authorization))
	body = []byte(e.expand(t, string(body)))
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: Transfer-Encoding: chunked
	}
	req, err := http.NewRequest(http.MethodPost, e.s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	describe := func() string {
		const max = 2000
		b := string(body)
		if len(b) > max {
			b = b[:max] + fmt.Sprintf("… (%d bytes)", len(body))
		}
		return fmt.Sprintf("POST %s\nContent-Type: %q\nAuthorization: %q\nchunked: %v\nbody: %q", path, contentType, authorization, chunked, b)
	}
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s\nno answer: %v\nserver log:\n%s", describe(), err, tail(e.s.logs.String(), 4000))
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s\nreading the answer: %v", describe(), err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nanswer %d %q\n%s\nserver log:\n%s", describe(), res.StatusCode, raw, fmt.Sprintf(format, args...), tail(e.s.logs.String(), 4000))
	}
	status := res.StatusCode
	if status >= 500 && status != http.StatusServiceUnavailable {
		fail("a server error")
	}
	if status == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
		fail("503 without Retry-After")
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		fail("Cache-Control %q, want no-store", cc)
	}
	var m map[string]any
	if len(raw) > 0 || status != http.StatusOK {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			fail("Content-Type %q, want JSON", ct)
		}
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			fail("the body is not a JSON object: %v", err)
		}
	}
	if status != http.StatusOK {
		if code, ok := m["error"].(string); !ok || code == "" {
			fail("no error code")
		}
		if d, ok := m["error_description"]; ok {
			if _, isString := d.(string); !isString {
				fail("error_description is not a string")
			}
		}
	}
	return status, m
}

// tail is the end of a log, where the line about a failed request is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// addCommonSeeds adds the malformed bodies every form endpoint must refuse
// cleanly, on top of extra, the endpoint's own well-formed requests.
func addCommonSeeds(f *testing.F, extra ...string) {
	add := func(ct, auth, body string) {
		f.Add(ct, auth, []byte(body), false)
	}
	for _, body := range extra {
		add(formType, "", body)
		add(formType, "Basic {basic}", body)
		f.Add(formType, "", []byte(body), true)
		// Truncated anywhere, the way a dropped connection or a bug in a
		// client would cut it.
		add(formType, "", body[:len(body)/2])
		add(formType, "", body[:len(body)-1])
	}
	// Bad percent-encoding, separators and encodings.
	for _, body := range []string{
		"", "&", "=", "&&&==&", "%", "%zz", "grant_type=password&%zz", "grant_type=%",
		"grant_type=%E0%A4%A", "grant_type=password%00", "client_id=%FF%FE&grant_type=password",
		"grant_type=password;client_id=mobile", "grant_type=password&client_id=mobile;x=y",
		"grant_type=+password+&client_id=+mobile", "grant_type=pass%77ord&client_id=mob%69le&username=ada&password=x",
		"grant_type=password&client_id=mobile&username=\xff\xfe&password=\x00",
		"token=%", "token=a%2Eb%2Ec", "token=" + strings.Repeat("%41", 1000),
	} {
		add(formType, "", body)
	}
	// Duplicate parameters.
	for _, body := range []string{
		"grant_type=password&grant_type=refresh_token&client_id=mobile",
		"grant_type=password&client_id=mobile&client_id=reporter&username=ada&password={password}",
		"grant_type=password&client_id=mobile&username=ada&username=nobody&password={password}&password=x",
		"grant_type=client_credentials&client_id=reporter&client_secret={secret}&client_secret=x",
		"grant_type=client_credentials&client_id=reporter&client_secret={secret}&scope=users:stats&scope=openid",
		"token={access}&token={refresh}&client_id=mobile",
	} {
		add(formType, "", body)
	}
	// Huge parameters, just under and over the 64 KiB limit.
	add(formType, "", "grant_type=client_credentials&client_id=reporter&client_secret={secret}&scope="+strings.Repeat("users:stats+", 5400))
	add(formType, "", "grant_type=refresh_token&client_id=mobile&refresh_token={refresh}&scope="+strings.Repeat("openid%20", 7000))
	add(formType, "", "client_id=mobile&token="+strings.Repeat("A", 64<<10))
	f.Add(formType, "", []byte("client_id=mobile&token="+strings.Repeat("A", 70<<10)), true)
	add(formType, "", strings.Repeat("a=b&", 16<<10))
	// Other media types.
	multipartBody := "--XyZ\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nreporter\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\n{secret}\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{access}\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
	add("multipart/form-data; boundary=XyZ", "", multipartBody)
	add("multipart/form-data; boundary=XyZ", "Basic {basic}", multipartBody[:len(multipartBody)/2])
	add("multipart/form-data", "", multipartBody)
	add("multipart/form-data; boundary=\"\"", "", "--\r\n\r\n")
	add("application/json", "", `{"grant_type":"password","client_id":"mobile","username":"ada","password":"{password}"}`)
	add("text/plain", "", "grant_type=client_credentials&client_id=reporter&client_secret={secret}")
	add("", "", "grant_type=client_credentials&client_id=reporter&client_secret={secret}")
	add("application/x-www-form-urlencoded; charset=utf-16", "", "\xff\xfeg\x00r\x00")
	add("application/x-www-form-urlencoded;;;=", "", "grant_type=password")
	add("application/x-www-form-urlencoded, text/plain", "", "grant_type=password")
	// Authorization headers that are not (valid) Basic credentials.
	for _, auth := range []string{
		"Basic", "Basic ", "Basic !!!", "Basic " + base64.StdEncoding.EncodeToString([]byte("reporter")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("%zz:%")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("mobile:")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("reporter:wrong")),
		"basic {basic}", "Basic  {basic}", "Bearer {access}", "Digest username=\"reporter\"",
	} {
		add(formType, auth, "grant_type=client_credentials&token={access}")
	}
	add(formType, "Basic {basic}", "grant_type=client_credentials&client_secret={secret}&token={access}")
	add(formType, "Basic {basic}", "grant_type=client_credentials&client_id=mobile&token={access}")
	add(formType, "", "grant_type=client_credentials&client_id=reporter&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=x.y.z&token={access}")
}

// FuzzTokenEndpoint fuzzes POST /oauth2/token.
func FuzzTokenEndpoint(f *testing.F) {
	e := newFuzzEnv(f)
	addCommonSeeds(f,
		"grant_type=password&client_id=mobile&username=ada&password={password}&scope=openid+profile+email+offline_access",
		"grant_type=password&client_id=mobile&username=ADA@example.com&password={password}",
		"grant_type=password&client_id=mobile&username=ada&password=wrong-password-1",
		"grant_type=password&client_id=mobile&username=ada&password={password}&scope=users:stats",
		"grant_type=refresh_token&client_id=mobile&refresh_token={refresh}",
		"grant_type=refresh_token&client_id=mobile&refresh_token={refresh}&scope=openid+email",
		"grant_type=refresh_token&client_id=mobile&refresh_token={refresh}&scope=users:stats",
		"grant_type=refresh_token&client_id=mobile&refresh_token={access}",
		"grant_type=refresh_token&client_id=reporter&client_secret={secret}&refresh_token={refresh}",
		"grant_type=client_credentials&client_id=reporter&client_secret={secret}&scope=users:stats",
		"grant_type=client_credentials&client_id=reporter&client_secret={secret}&audience=https://api.example.com",
		"grant_type=client_credentials&client_id=reporter&client_secret={secret}&audience=https://api.example.com.evil",
		"grant_type=client_credentials&client_id=mobile",
		"grant_type=authorization_code&client_id=mobile&code=abc&redirect_uri=http://x",
		"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=x.y.z",
	)
	f.Fuzz(func(t *testing.T, contentType, authorization string, body []byte, chunked bool) {
		status, m := e.post(t, "/oauth2/token", contentType, authorization, body, chunked)
		if status == http.StatusOK {
			if tok, _ := m["access_token"].(string); tok == "" {
				t.Fatalf("200 without an access token: %v", m)
			}
			if typ, _ := m["token_type"].(string); !strings.EqualFold(typ, "Bearer") {
				t.Fatalf("token_type %v", m["token_type"])
			}
			if exp, _ := m["expires_in"].(float64); exp <= 0 {
				t.Fatalf("expires_in %v", m["expires_in"])
			}
		}
	})
}

// FuzzRevokeEndpoint fuzzes POST /oauth2/revoke (RFC 7009). A successful
// revocation answers 200 with an empty body.
func FuzzRevokeEndpoint(f *testing.F) {
	e := newFuzzEnv(f)
	addCommonSeeds(f,
		"client_id=mobile&token={access}",
		"client_id=mobile&token={refresh}&token_type_hint=refresh_token",
		"client_id=mobile&token={refresh}&token_type_hint=access_token",
		"client_id=mobile&token={access}&token_type_hint=urn:x",
		"client_id=reporter&client_secret={secret}&token={refresh}",
		"client_id=mobile&token=not-a-token",
		"client_id=mobile",
	)
	f.Fuzz(func(t *testing.T, contentType, authorization string, body []byte, chunked bool) {
		e.post(t, "/oauth2/revoke", contentType, authorization, body, chunked)
	})
}

// FuzzIntrospectEndpoint fuzzes POST /oauth2/introspect (RFC 7662). A 200
// is an object with a boolean "active"; an active one names its subject and
// client.
func FuzzIntrospectEndpoint(f *testing.F) {
	e := newFuzzEnv(f)
	addCommonSeeds(f,
		"client_id=reporter&client_secret={secret}&token={access}",
		"client_id=reporter&client_secret={secret}&token={refresh}&token_type_hint=refresh_token",
		"client_id=reporter&client_secret={secret}&token={access}&token_type_hint=refresh_token",
		"client_id=reporter&client_secret={secret}&token=not-a-token",
		"client_id=reporter&client_secret={secret}&token={access}.x",
		"client_id=mobile&token={access}",
		"client_id=reporter&client_secret={secret}",
	)
	f.Fuzz(func(t *testing.T, contentType, authorization string, body []byte, chunked bool) {
		status, m := e.post(t, "/oauth2/introspect", contentType, authorization, body, chunked)
		if status != http.StatusOK {
			return
		}
		active, ok := m["active"].(bool)
		if !ok {
			t.Fatalf("200 without a boolean active: %v", m)
		}
		if !active {
			if len(m) != 1 {
				t.Fatalf("an inactive token shows more than active: %v", m)
			}
			return
		}
		for _, k := range []string{"sub", "client_id", "iss", "token_type"} {
			if v, _ := m[k].(string); v == "" {
				t.Fatalf("active, without %s: %v", k, m)
			}
		}
		if m["iss"] != e.s.URL {
			t.Fatalf("iss %v", m["iss"])
		}
	})
}
