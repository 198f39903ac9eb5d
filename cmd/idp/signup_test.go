package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"idp/database/databasetest"
	"idp/fake"
)

// signupBody is a complete signup; tests change or drop fields.
func signupBody(username, email string) map[string]string {
	return map[string]string{
		"client_id": "mobile", "username": username, "email": email, "password": testPassword,
		"first_name": "Ada", "last_name": "Lovelace", "gender": "female",
	}
}

func (s *testServer) signupJSON(fields map[string]string) response {
	s.t.Helper()
	body, _ := json.Marshal(fields)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/users", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return s.do(req)
}

// multipartBody encodes fields and an optional picture.
func multipartBody(fields map[string]string, pic []byte, filename string) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if pic != nil {
		fw, _ := mw.CreateFormFile("picture", filename)
		fw.Write(pic)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (s *testServer) signupMultipart(fields map[string]string, pic []byte, filename string) response {
	s.t.Helper()
	body, ct := multipartBody(fields, pic, filename)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/users", body)
	req.Header.Set("Content-Type", ct)
	return s.do(req)
}

func (s *testServer) send(method, path, bearer, contentType string, body io.Reader) response {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, body)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return s.do(req)
}

// problemOf decodes an RFC 9457 answer and checks its shape.
type problemBody struct {
	Type, Title, Detail string
	Status              int
	Errors              []struct{ Field, Code, Message string }
}

func problemOf(t *testing.T, r response) problemBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q for status %d: %s", ct, r.status, r.body)
	}
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status || p.Type == "" || p.Title == "" {
		t.Errorf("not a problem: %d %s", r.status, r.body)
	}
	return p
}

func hasFieldError(p problemBody, field, code string) bool {
	for _, e := range p.Errors {
		if e.Field == field && (code == "" || e.Code == code) {
			return true
		}
	}
	return false
}

// download GETs a URL with no headers, as the contract promises works.
func download(t *testing.T, rawURL string) (int, http.Header, []byte) {
	t.Helper()
	res, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// eachEngineAndStore runs fn on a fresh database of every engine, with the
// directory store and with GCS behind an in-process fake-gcs-server.
func eachEngineAndStore(t *testing.T, fn func(t *testing.T, dbURL string, mutate func(*config), objects func() int)) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			pictureStores(t, func(t *testing.T, mutate func(*config), objects func() int) {
				fn(t, e.NewURL(t), mutate, objects)
			})
		})
	}
}

// pictureStores runs fn with the directory store and with GCS behind
// an in-process fake-gcs-server.
func pictureStores(t *testing.T, fn func(t *testing.T, mutate func(*config), objects func() int)) {
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		fn(t, func(c *config) { c.PicturesURL = dir }, func() int {
			n := 0
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					n++
				}
				return nil
			})
			return n
		})
	})
	t.Run("gcs", func(t *testing.T) {
		gcs := fake.GCS(t)
		fn(t, func(c *config) {
			c.PicturesURL = "gs://" + testBucket + "/pictures"
			c.pictureOptions = gcsOptions(t, gcs)
		}, func() int { return fake.GCSObjects(t, gcs) })
	})
}

func TestSignupAndProfile(t *testing.T) {
	eachEngineAndStore(t, func(t *testing.T, dbURL string, store func(*config), objects func() int) {
		{
			ctx := context.Background()
			s := startServer(t, dbURL, store)
			s.mobile()

			// JSON signup: 201, Location, the profile and the tokens of a
			// password grant.
			r := s.signupJSON(signupBody("Alice", "Alice@Example.com"))
			if r.status != http.StatusCreated || r.header.Get("Location") != s.URL+"/v1/profile" {
				t.Fatalf("JSON signup: %d %v %s", r.status, r.header.Get("Location"), r.body)
			}
			var created struct {
				User   map[string]any `json:"user"`
				Tokens map[string]any `json:"tokens"`
			}
			json.Unmarshal(r.body, &created)
			u := created.User
			if u["username"] != "alice" || u["email"] != "alice@example.com" || u["gender"] != "female" ||
				u["picture_url"] != nil || u["id"] == nil || u["created_at"] == nil || u["first_name"] != "Ada" {
				t.Errorf("profile: %v", u)
			}
			for _, secret := range []string{"password", "password_hash", "passwordHash"} {
				if _, ok := u[secret]; ok || strings.Contains(string(r.body), testPassword) {
					t.Errorf("the profile shows a secret: %s", r.body)
				}
			}
			tok := created.Tokens
			if tok["token_type"] != "Bearer" || tok["access_token"] == nil || tok["refresh_token"] == nil ||
				tok["id_token"] == nil || tok["scope"] != "openid profile email offline_access" {
				t.Errorf("tokens: %v", tok)
			}
			if c := s.get("/userinfo", tok["access_token"].(string)).json(t); c["sub"] != fmt.Sprint(u["id"]) {
				t.Errorf("the signup token's userinfo: %v", c)
			}

			// The new account logs in by username and email, any case.
			conf := mobileConfig(s, allUserScopes...)
			for _, login := range []string{"ALICE", "alice@EXAMPLE.com"} {
				if _, err := conf.PasswordCredentialsToken(ctx, login, testPassword); err != nil {
					t.Fatalf("login as %s: %v", login, err)
				}
			}

			// Multipart signup with a JPEG that carries GPS tags.
			withGPS := jpegWithGPS(t)
			r = s.signupMultipart(signupBody("bob", "bob@example.com"), withGPS, "me.jpg")
			if r.status != http.StatusCreated {
				t.Fatalf("multipart signup: %d %s", r.status, r.body)
			}
			json.Unmarshal(r.body, &created)
			picURL, _ := created.User["picture_url"].(string)
			if picURL == "" {
				t.Fatalf("no picture_url: %s", r.body)
			}
			status, hdr, pic := download(t, picURL)
			if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "image/") {
				t.Fatalf("download %s: %d %v", picURL, status, hdr)
			}
			if bytes.Contains(pic, []byte("Exif")) || bytes.Contains(pic, []byte(gpsSecret)) {
				t.Error("the stored picture still has its EXIF GPS data")
			}
			if cfg, _, err := image.DecodeConfig(bytes.NewReader(pic)); err != nil || cfg.Width != 64 {
				t.Errorf("stored picture: %v %+v", err, cfg)
			}
			if objects() != 1 {
				t.Errorf("%d stored objects, want 1", objects())
			}

			// Profile read, update, picture replace and delete.
			bobTok, err := conf.PasswordCredentialsToken(ctx, "bob", testPassword)
			if err != nil {
				t.Fatal(err)
			}
			at := bobTok.AccessToken
			p := s.get("/v1/profile", at).json(t)
			if p["username"] != "bob" || p["picture_url"] == nil {
				t.Errorf("GET /v1/profile: %v", p)
			}
			ui := s.get("/userinfo", at).json(t)
			if ui["picture"] == nil || ui["given_name"] != p["first_name"] || ui["email"] != p["email"] || ui["preferred_username"] != p["username"] {
				t.Errorf("userinfo %v disagrees with the profile %v", ui, p)
			}
			r = s.send(http.MethodPatch, "/v1/profile", at, "application/json", strings.NewReader(`{"first_name":"  Robert ","gender":"male"}`))
			if r.status != 200 || r.json(t)["first_name"] != "Robert" || r.json(t)["gender"] != "male" || r.json(t)["last_name"] != "Lovelace" {
				t.Errorf("PATCH: %d %s", r.status, r.body)
			}
			r = s.send(http.MethodPatch, "/v1/profile", at, "application/json", strings.NewReader(`{"email":"x@example.com","gender":"robot"}`))
			if pb := problemOf(t, r); r.status != 422 || !hasFieldError(pb, "email", "read_only") || !hasFieldError(pb, "gender", "invalid") {
				t.Errorf("bad PATCH: %d %s", r.status, r.body)
			}
			if s.get("/v1/profile", at).json(t)["gender"] != "male" {
				t.Error("a refused PATCH changed the profile")
			}
			// null removes, as in a merge patch: a name cannot go, and a
			// gender goes back to unspecified.
			r = s.send(http.MethodPatch, "/v1/profile", at, "application/merge-patch+json", strings.NewReader(`{"first_name":null,"gender":null}`))
			if pb := problemOf(t, r); r.status != 422 || !hasFieldError(pb, "first_name", "required") || hasFieldError(pb, "gender", "invalid") {
				t.Errorf("PATCH removing the first name: %d %s", r.status, r.body)
			}
			r = s.send(http.MethodPatch, "/v1/profile", at, "application/merge-patch+json", strings.NewReader(`{"gender":null}`))
			if r.status != 200 || r.json(t)["gender"] != "unspecified" || r.json(t)["first_name"] != "Robert" {
				t.Errorf("PATCH removing the gender: %d %s", r.status, r.body)
			}

			newPic := testJPEG(t, 2000, 1000)
			body, ct := multipartBody(nil, newPic, "new.jpg")
			r = s.send(http.MethodPut, "/v1/profile/picture", at, ct, body)
			if r.status != 200 {
				t.Fatalf("PUT picture: %d %s", r.status, r.body)
			}
			replaced, _ := r.json(t)["picture_url"].(string)
			if replaced == "" || replaced == picURL {
				t.Errorf("picture_url after replace: %q", replaced)
			}
			_, _, pic = download(t, replaced)
			if cfg, _, err := image.DecodeConfig(bytes.NewReader(pic)); err != nil || cfg.Width != 1024 || cfg.Height != 512 {
				t.Errorf("replaced picture: %v %+v, want 1024×512", err, cfg)
			}
			if objects() != 1 {
				t.Errorf("%d objects after replacing, want 1 (the old one removed)", objects())
			}
			// The raw-body form of PUT.
			r = s.send(http.MethodPut, "/v1/profile/picture", at, "image/png", bytes.NewReader(testPNG(t, 30, 20)))
			if r.status != 200 || objects() != 1 {
				t.Errorf("raw PUT: %d %s, %d objects", r.status, r.body, objects())
			}
			r = s.send(http.MethodPut, "/v1/profile/picture", at, "image/png", strings.NewReader("this is text"))
			if r.status != 415 {
				t.Errorf("PUT of text: %d", r.status)
			}
			r = s.send(http.MethodDelete, "/v1/profile/picture", at, "", nil)
			if r.status != 204 || objects() != 0 || s.get("/v1/profile", at).json(t)["picture_url"] != nil {
				t.Errorf("DELETE picture: %d, %d objects", r.status, objects())
			}
			if r = s.send(http.MethodDelete, "/v1/profile/picture", at, "", nil); r.status != 204 {
				t.Errorf("second DELETE: %d", r.status)
			}
		}
	})
}

func TestSignupErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		secret := s.createClient(newConfidential("backend"))
		if r := s.signupJSON(signupBody("ada", "ada@example.com")); r.status != 201 {
			t.Fatalf("first signup: %d %s", r.status, r.body)
		}
		with := func(k, v string) map[string]string {
			b := signupBody("grace", "grace@example.com")
			if v == "" {
				delete(b, k)
			} else {
				b[k] = v
			}
			return b
		}
		tests := []struct {
			name   string
			body   map[string]string
			status int
			field  string
			code   string
		}{
			{"taken username, other case", with("username", "ADA"), 409, "username", "taken"},
			{"taken email, other case", with("email", "Ada@EXAMPLE.com"), 409, "email", "taken"},
			{"bad username", with("username", "a"), 422, "username", "invalid"},
			{"bad email", with("email", "grace"), 422, "email", "invalid"},
			{"short password", with("password", "too short"), 422, "password", "too_short"},
			{"common password", with("password", "unbelievable"), 422, "password", "common"},
			{"password is the username", with("password", "Grace.Hopper1"), 0, "", ""},
			{"no first name", with("first_name", ""), 422, "first_name", "required"},
			{"bad gender", with("gender", "x"), 422, "gender", "invalid"},
			{"unknown client", with("client_id", "nobody"), 401, "", ""},
			{"no client", with("client_id", ""), 401, "", ""},
			{"client without the password grant", with("client_secret", secret), 401, "", ""},
		}
		for _, tc := range tests {
			if tc.status == 0 {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				r := s.signupJSON(tc.body)
				p := problemOf(t, r)
				if r.status != tc.status || tc.field != "" && !hasFieldError(p, tc.field, tc.code) {
					t.Errorf("%d %s", r.status, r.body)
				}
				if r.status == 401 && !strings.Contains(r.header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("401 without a challenge")
				}
			})
		}
		// The username as password, in another case.
		b := signupBody("gracehopper1", "grace@example.com")
		b["password"] = "GraceHopper1"
		if r := s.signupJSON(b); r.status != 422 || !hasFieldError(problemOf(t, r), "password", "matches_login") {
			t.Errorf("password = username: %d %s", r.status, r.body)
		}
		// A confidential client with the wrong secret, then a client not
		// registered for the password grant.
		s.createClient(newPasswordClient("web", false))
		b = signupBody("grace", "grace@example.com")
		b["client_id"], b["client_secret"] = "web", "wrong"
		if r := s.signupJSON(b); r.status != 401 {
			t.Errorf("wrong client secret: %d %s", r.status, r.body)
		}
		b["client_id"], b["client_secret"] = "backend", secret
		if r := s.signupJSON(b); r.status != 403 {
			t.Errorf("client without the password grant: %d %s", r.status, r.body)
		}

		// Malformed and unsupported bodies.
		for _, c := range []struct {
			ct, body string
			status   int
		}{
			{"application/json", "{", 400},
			{"application/json", "[]", 400},
			{"application/json", `{"client_id":"mobile","username": 5}`, 422},
			{"text/plain", "username=x", 415},
			{"application/x-www-form-urlencoded", "username=x", 415},
			{"multipart/form-data; boundary=zzz", "garbage", 400},
		} {
			r := s.send(http.MethodPost, "/v1/users", "", c.ct, strings.NewReader(c.body))
			if r.status != c.status {
				t.Errorf("%s %q: %d %s", c.ct, c.body, r.status, r.body)
			}
			problemOf(t, r)
		}

		// Pictures: not an image (a text file named .png), too many
		// pixels, a decompression bomb.
		r := s.signupMultipart(signupBody("pic1", "pic1@example.com"), []byte("hello, I am text"), "me.png")
		if p := problemOf(t, r); r.status != 415 || !hasFieldError(p, "picture", "") {
			t.Errorf("text as picture: %d %s", r.status, r.body)
		}
		r = s.signupMultipart(signupBody("pic2", "pic2@example.com"), fake.PNGBomb(50_000, 50_000), "bomb.png")
		if p := problemOf(t, r); r.status != 422 || !hasFieldError(p, "picture", "") {
			t.Errorf("decompression bomb: %d %s", r.status, r.body)
		}
		r = s.signupMultipart(signupBody("pic3", "pic3@example.com"), testPNG(t, 4097, 1), "wide.png")
		if p := problemOf(t, r); r.status != 422 || !hasFieldError(p, "picture", "") {
			t.Errorf("4097 px: %d %s", r.status, r.body)
		}
		for _, name := range []string{"pic1", "pic2", "pic3", "grace"} {
			if taken, _ := s.app.accounts.Taken(context.Background(), name, "nobody@example.com"); len(taken) != 0 {
				t.Errorf("a failed signup left user %s behind", name)
			}
		}
	})
}

// TestSignupBodyIsBounded sends a 6 MiB picture without a length and counts
// what the server read: it stops after the limit instead of buffering it all.
func TestSignupBodyIsBounded(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	pic := append(testJPEG(t, 8, 8), make([]byte, 6<<20)...)
	body, ct := multipartBody(signupBody("big", "big@example.com"), pic, "big.jpg")
	counted := &countingReader{r: body}
	req := httptest.NewRequest(http.MethodPost, "/v1/users", counted)
	req.Header.Set("Content-Type", ct)
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	s.app.handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if limit := int64(5<<20) + 200<<10; counted.n > limit {
		t.Errorf("the server read %d bytes of a 6 MiB body; the limit is 5 MiB", counted.n)
	}
	// With the length declared, the answer comes before any of the body.
	r := s.signupMultipart(signupBody("big", "big@example.com"), pic, "big.jpg")
	if r.status != http.StatusRequestEntityTooLarge || !hasFieldError(problemOf(t, r), "picture", "too_large") {
		t.Errorf("declared 6 MiB: %d %s", r.status, r.body)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestSignupRace has 50 signups race for one username (in varied case):
// the unique index decides, exactly one wins, the others get 409.
func TestSignupRace(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL, func(c *config) { c.HashQueueTimeout = time.Minute })
		s.mobile()
		const n = 50
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				name := "racer"
				if i%2 == 1 {
					name = "RACER"
				}
				statuses <- s.signupJSON(signupBody(name, fmt.Sprintf("racer%d@example.com", i))).status
			})
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for st := range statuses {
			count[st]++
		}
		if count[201] != 1 || count[409] != n-1 {
			t.Errorf("statuses %v, want one 201 and %d 409", count, n-1)
		}
	})
}

// TestFailedSignupLeavesNothing makes the database refuse the user row after
// the picture was stored: no user and no object may remain.
func TestFailedSignupLeavesNothing(t *testing.T) {
	eachEngineAndStore(t, func(t *testing.T, dbURL string, store func(*config), objects func() int) {
		{
			s := startServer(t, dbURL, store)
			s.mobile()
			trigger := "CREATE TRIGGER refuse_users BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'refused'); END"
			drop := "DROP TRIGGER refuse_users"
			switch s.app.db.Dialect {
			case "mysql":
				trigger = "CREATE TRIGGER refuse_users BEFORE INSERT ON users FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'"
			case "postgres":
				// A PostgreSQL trigger runs a function.
				if _, err := s.app.db.SQL.Exec("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused'; END$$"); err != nil {
					t.Fatal(err)
				}
				trigger = "CREATE TRIGGER refuse_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse()"
				drop = "DROP TRIGGER refuse_users ON users"
			}
			if _, err := s.app.db.SQL.Exec(trigger); err != nil {
				t.Fatal(err)
			}
			r := s.signupMultipart(signupBody("carol", "carol@example.com"), testJPEG(t, 40, 40), "me.jpg")
			if r.status < 500 {
				t.Fatalf("signup against a refusing database: %d %s", r.status, r.body)
			}
			problemOf(t, r)
			if n := objects(); n != 0 {
				t.Errorf("%d objects left behind", n)
			}
			s.app.db.SQL.Exec(drop)
			if r := s.signupMultipart(signupBody("carol", "carol@example.com"), testJPEG(t, 40, 40), "me.jpg"); r.status != 201 || objects() != 1 {
				t.Errorf("signup after the database recovered: %d, %d objects", r.status, objects())
			}
		}
	})
}

func TestUserAPIRefusesBadTokens(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		clock := fake.NewRunningClock()
		s := startServer(t, dbURL, func(c *config) { c.clock = clock.Now })
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		conf := mobileConfig(s, allUserScopes...)
		good, _ := conf.PasswordCredentialsToken(ctx, "ada", testPassword)
		revoked, _ := conf.PasswordCredentialsToken(ctx, "ada", testPassword)
		s.postForm("/oauth2/revoke", url.Values{"token": {revoked.RefreshToken}, "client_id": {"mobile"}}, "", "")
		noProfile, _ := mobileConfig(s, "openid", "email").PasswordCredentialsToken(ctx, "ada", testPassword)
		foreign := forgeWithKnownKid(t, s, good.AccessToken)
		secret := s.createClient(newConfidential("reports"))
		svc := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"users:stats"}}, "reports", secret).json(t)["access_token"].(string)

		check := func(path, token string, status int, wantErr string) {
			t.Helper()
			r := s.get(path, token)
			if r.status != status {
				t.Errorf("%s: %d, want %d: %s", path, r.status, status, r.body)
				return
			}
			if status >= 400 {
				problemOf(t, r)
				if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="`+wantErr+`"`) {
					t.Errorf("%s: WWW-Authenticate %q, want %s", path, r.header.Get("WWW-Authenticate"), wantErr)
				}
			}
		}
		for _, path := range []string{"/v1/profile", "/v1/users/stats"} {
			check(path, "", 401, "invalid_token")
			check(path, "garbage", 401, "invalid_token")
			check(path, revoked.AccessToken, 401, "invalid_token")
			check(path, foreign, 401, "invalid_token")
		}
		check("/v1/profile", good.AccessToken, 200, "")
		check("/v1/profile", noProfile.AccessToken, 403, "insufficient_scope")
		check("/v1/profile", svc, 403, "insufficient_scope")
		check("/v1/users/stats", good.AccessToken, 403, "insufficient_scope")
		check("/v1/users/stats", svc, 200, "")
		clock.Advance(16 * 60 * 1e9)
		check("/v1/profile", good.AccessToken, 401, "invalid_token")
		check("/v1/users/stats", svc, 401, "invalid_token")
	})
}

func TestStatsEndpoint(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string) {
		s := startServer(t, dbURL)
		s.mobile()
		var ids []int64
		for i, g := range []string{"female", "male", "female", "unspecified", "female"} {
			u, err := s.app.accounts.Create(context.Background(), newUserFixture(fmt.Sprintf("user%d", i), g))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, u.ID)
		}
		secret := s.createClient(newConfidential("reports"))
		tok, err := (&oauth2ClientCredentials{s, "reports", secret}).token("users:stats")
		if err != nil {
			t.Fatal(err)
		}
		r := s.get("/v1/users/stats", tok)
		want := fmt.Sprintf(`{"user_ids":[%d,%d,%d,%d,%d],"count_female":3,"count_male":1,"count_unspecified":1}`, ids[0], ids[1], ids[2], ids[3], ids[4])
		if r.status != 200 || strings.TrimSpace(string(r.body)) != want || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("stats: %d %q %s, want %s", r.status, r.header.Get("Content-Type"), r.body, want)
		}
	})
}

// TestSignupDeepPNG sends the 16-bit bomb first in the body: with an
// unknown client it is a quick 401 that creates nothing; with the right
// client it is refused from its header as a 422 on picture.
func TestSignupDeepPNG(t *testing.T) {
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	s.mobile()
	bomb := fake.DeepPNG()
	send := func(clientID string) response {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("picture", "deep.png")
		fw.Write(bomb)
		for k, v := range signupBody("deep", "deep@example.com") {
			if k == "client_id" {
				v = clientID
			}
			mw.WriteField(k, v)
		}
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/users", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return s.do(req)
	}
	start := time.Now()
	if r := send("nobody"); r.status != 401 {
		t.Errorf("unknown client with the bomb: %d %s", r.status, r.body)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("the 401 took %v", took)
	}
	start = time.Now()
	if r := send("mobile"); r.status != 422 || !hasFieldError(problemOf(t, r), "picture", "") {
		t.Errorf("the bomb from the mobile client: %d %s", r.status, r.body)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("refusing the bomb took %v: it was decoded", took)
	}
	if taken, _ := s.app.accounts.Taken(context.Background(), "deep", "deep@example.com"); len(taken) != 0 {
		t.Errorf("a refused signup left %v behind", taken)
	}
}

// TestSignupConcurrentPicturePuts is an app retrying: four identical PUTs
// of a picture at once. Each is answered 200 (the last writer wins), and
// the profile's picture_url then downloads, with one object left.
func TestSignupConcurrentPicturePuts(t *testing.T) {
	eachEngineAndStore(t, func(t *testing.T, dbURL string, store func(*config), objects func() int) {
		s := startServer(t, dbURL, store)
		s.mobile()
		s.createUser("ada", "ada@example.com", testPassword)
		tok, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(context.Background(), "ada", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		pic := testJPEG(t, 120, 90)
		for round := range 2 { // from no picture, then replacing one
			const n = 4
			statuses := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					statuses[i] = s.send(http.MethodPut, "/v1/profile/picture", tok.AccessToken, "image/jpeg", bytes.NewReader(pic)).status
				})
			}
			close(start)
			wg.Wait()
			for _, st := range statuses {
				if st != 200 {
					t.Errorf("round %d: statuses %v, want 200 each", round, statuses)
					break
				}
			}
			p := s.get("/v1/profile", tok.AccessToken).json(t)
			u, _ := p["picture_url"].(string)
			if u == "" {
				t.Fatalf("round %d: no picture_url: %v", round, p)
			}
			status, hdr, body := download(t, u)
			if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "image/") {
				t.Fatalf("round %d: download %s: %d %v", round, u, status, hdr)
			}
			if _, _, err := image.DecodeConfig(bytes.NewReader(body)); err != nil {
				t.Errorf("round %d: the download is not an image: %v", round, err)
			}
			if k := objects(); k != 1 {
				t.Errorf("round %d: %d objects, want 1 (the replaced ones deleted)", round, k)
			}
		}
	})
}

// TestSignupRaceWithPicture has four signups with one username and the same
// picture race: exactly one 201, the others 409, and the winner's
// picture_url downloads; the losers leave no object behind.
func TestSignupRaceWithPicture(t *testing.T) {
	eachEngineAndStore(t, func(t *testing.T, dbURL string, store func(*config), objects func() int) {
		s := startServer(t, dbURL, store, func(c *config) { c.HashQueueTimeout = time.Minute })
		s.mobile()
		pic := testJPEG(t, 120, 90)
		const n = 4
		results := make([]response, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i] = s.signupMultipart(signupBody("racer", fmt.Sprintf("racer%d@example.com", i)), pic, "me.jpg")
			})
		}
		close(start)
		wg.Wait()
		var won []response
		count := map[int]int{}
		for _, r := range results {
			count[r.status]++
			if r.status == 201 {
				won = append(won, r)
			}
		}
		if count[201] != 1 || count[409] != n-1 {
			t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
		}
		var created struct {
			User map[string]any `json:"user"`
		}
		json.Unmarshal(won[0].body, &created)
		u, _ := created.User["picture_url"].(string)
		if u == "" {
			t.Fatalf("the winner has no picture_url: %s", won[0].body)
		}
		if status, hdr, _ := download(t, u); status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "image/") {
			t.Errorf("the winner's picture %s: %d %v", u, status, hdr)
		}
		if k := objects(); k != 1 {
			t.Errorf("%d objects, want the winner's one", k)
		}
	})
}
