package profile

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"idp/account"
	"idp/picture"
)

// The signup fuzz targets call readSignup and newUser directly, on a Server
// with no dependencies: parsing and validation touch none.

// fuzzLimits keeps pictures small so that an execution stays fast.
var fuzzLimits = picture.Limits{MaxBytes: 64 << 10, MaxSide: 256, OutputMaxSide: 32}

func newFuzzServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(Config{
		Issuer:   "http://idp.test",
		Pictures: fuzzLimits,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		SpoolDir: tb.TempDir(),
	}, Deps{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var (
	usernameRule = regexp.MustCompile(`^[a-z0-9._-]{3,32}$`)
	// userFields are the fields newUser reports on; a signup body may also
	// be wrong about the client's credentials and the picture.
	userFields = []string{"username", "password", "email", "first_name", "last_name", "gender"}
	bodyFields = append(slices.Clone(signupFieldNames), "picture")
)

// signup runs readSignup and newUser on a request and checks what holds for
// any body. It returns what readSignup returned.
func signup(t *testing.T, s *Server, contentType string, body []byte) (signupRequest, bool) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/users", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	req, ok := s.readSignup(w, r)
	t.Cleanup(req.close)
	if !ok {
		checkProblem(t, w)
		return req, false
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 || w.Code != http.StatusOK {
		t.Fatalf("readSignup accepted the body but answered %d %v %q", w.Code, w.Header(), w.Body)
	}
	if req.fields.present == nil || req.form == nil {
		t.Fatalf("readSignup accepted the body with nil maps: %+v", req)
	}
	for _, fe := range req.errs {
		if !slices.Contains(bodyFields, fe.Field) || fe.Code == "" || fe.Message == "" {
			t.Fatalf("readSignup field error %+v: unknown field or empty code or message", fe)
		}
	}
	if req.hasPicture != (req.picture != nil) || req.picture != nil && req.picture.Size() > fuzzLimits.MaxBytes {
		t.Fatalf("readSignup kept a picture %v (present %v)", req.picture, req.hasPicture)
	}
	if req.hasPicture {
		// What the handler does with it once the client and the fields
		// have passed: the header, then the decode.
		var errs []FieldError
		w := httptest.NewRecorder()
		u, ok := s.inspectPicture(w, req.picture, &errs)
		switch {
		case !ok:
			checkProblem(t, w)
		case u == nil:
			if len(errs) != 1 || errs[0].Field != "picture" {
				t.Fatalf("inspectPicture refused the picture with %+v", errs)
			}
		default:
			img, ok := s.decodePicture(w, r, u)
			if !ok {
				checkProblem(t, w)
				break
			}
			if img.Width < 1 || img.Height < 1 || img.Width > fuzzLimits.OutputMaxSide || img.Height > fuzzLimits.OutputMaxSide {
				t.Fatalf("picture %d×%d outside the limits", img.Width, img.Height)
			}
		}
	}
	checkNewUser(t, s, req.fields)
	return req, true
}

// checkProblem checks the answer of a refused body: a problem+json 4xx
// whose status is the response's.
func checkProblem(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	switch w.Code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
	default:
		t.Fatalf("readSignup refused the body with %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem %q: %v", w.Body, err)
	}
	if p.Status != w.Code || !strings.HasPrefix(p.Type, problemType) || p.Title == "" {
		t.Fatalf("answered %d with problem %+v", w.Code, p)
	}
	for _, fe := range p.Errors {
		if !slices.Contains(bodyFields, fe.Field) || fe.Code == "" || fe.Message == "" {
			t.Fatalf("problem field error %+v: unknown field or empty code or message", fe)
		}
	}
}

// checkNewUser validates f and checks the result against the contract.
func checkNewUser(t *testing.T, s *Server, f signupFields) {
	t.Helper()
	nu, errs := s.newUser(f)
	seen := map[string]bool{}
	for _, fe := range errs {
		if !slices.Contains(userFields, fe.Field) || fe.Code == "" || fe.Message == "" {
			t.Fatalf("newUser field error %+v: unknown field or empty code or message", fe)
		}
		if seen[fe.Field] {
			t.Fatalf("newUser reports %s twice: %+v", fe.Field, errs)
		}
		seen[fe.Field] = true
	}
	if len(errs) > 0 {
		return
	}
	nameOK := func(v string) bool {
		n := utf8.RuneCountInString(v)
		return utf8.ValidString(v) && strings.TrimSpace(v) == v && n >= 1 && n <= 100
	}
	pw := utf8.RuneCountInString(nu.Password)
	switch {
	case !usernameRule.MatchString(nu.Username):
		t.Fatalf("accepted username %q", nu.Username)
	case nu.Username != account.NormalizeLogin(f.Username):
		t.Fatalf("username %q from %q", nu.Username, f.Username)
	case nu.Email == "" || len(nu.Email) > 254 || nu.Email != strings.ToLower(nu.Email) || nu.Email != account.NormalizeLogin(f.Email):
		t.Fatalf("accepted email %q from %q", nu.Email, f.Email)
	case !utf8.ValidString(nu.Email) || strings.Count(nu.Email, "@") < 1:
		t.Fatalf("accepted email %q", nu.Email)
	case !nameOK(nu.FirstName) || nu.FirstName != strings.TrimSpace(f.FirstName):
		t.Fatalf("accepted first name %q from %q", nu.FirstName, f.FirstName)
	case !nameOK(nu.LastName) || nu.LastName != strings.TrimSpace(f.LastName):
		t.Fatalf("accepted last name %q from %q", nu.LastName, f.LastName)
	case nu.Gender != "female" && nu.Gender != "male" && nu.Gender != "unspecified":
		t.Fatalf("accepted gender %q", nu.Gender)
	case nu.Password != f.Password || !utf8.ValidString(nu.Password) || pw < s.cfg.PasswordMinLength || pw > PasswordMaxLength:
		t.Fatalf("accepted a password of %d characters: %q", pw, nu.Password)
	case strings.EqualFold(nu.Password, nu.Username) || strings.EqualFold(nu.Password, nu.Email):
		t.Fatalf("accepted password %q equal to the login", nu.Password)
	}
}

// FuzzSignupJSON fuzzes a JSON signup body. On top of the properties of
// every body, a JSON object within 64 KiB is always read, each string field
// as sent (the last of duplicate keys, as encoding/json decides) and each
// other non-null value as an "invalid" field error.
func FuzzSignupJSON(f *testing.F) {
	s := newFuzzServer(f)
	for _, seed := range []string{
		`{"username":"ada","password":"a sturdy passphrase","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","gender":"female","client_id":"mobile"}`,
		`{"username":" Ada.L_1-x ","password":"a sturdy passphrase","email":" Ada@Example.COM ","first_name":"  Ada  ","last_name":"Lovelace"}`,
		`{"username":"ada","password":"ada","email":"ada@example.com","first_name":"Ada","last_name":"L","gender":"unspecified"}`,
		`{"username":"ada","password":"ADA@EXAMPLE.COM","email":"ada@example.com","first_name":"Ada","last_name":"L"}`,
		`{"username":"ada","password":"password1234","email":"ada@example.com","first_name":"Ada","last_name":"L"}`,
		`{"username":"ada","password":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9","email":"ada@ex.co","first_name":"\u00c9","last_name":"\u6f22"}`,
		`{"username":"ada","password":"\ud800\udc00\ud800 surrogates!","email":"a@b.c","first_name":"A\u0000","last_name":"B\u200b"}`,
		`{"username":"ada","username":"bob","password":"a sturdy passphrase","email":"ada@example.com","first_name":"Ada","last_name":"L"}`,
		`{"username":1,"password":true,"email":["a@b.c"],"first_name":{"x":1},"last_name":null,"gender":1.5,"client_id":2,"client_secret":[]}`,
		`{"username":"İstanbul","email":"ADA@EXAMPLE.COM","password":"a sturdy passphrase","first_name":"K","last_name":"K"}`,
		`{"username":"ada","email":"\"ada\"@example.com","password":"a sturdy passphrase","first_name":"A","last_name":"B"}`,
		`{"username":"ada","email":"Ada <ada@example.com>","password":"a sturdy passphrase","first_name":"A","last_name":"B"}`,
		`{"username":"ada","email":"ada@[127.0.0.1]","password":"a sturdy passphrase","first_name":"A","last_name":"B"}`,
		`{"username":"ada","email":"ada@example.com","password":"a sturdy passphrase","first_name":"A","last_name":"B","gender":"Female"}`,
		`{"username":"ab","email":"a@b","password":"short","first_name":"","last_name":"   ","gender":""}`,
		`{"username":"ada","email":"` + strings.Repeat("a", 64) + `@` + strings.Repeat("b", 185) + `.com","password":"a sturdy passphrase","first_name":"A","last_name":"B"}`,
		`{"username":"ada","email":"ada@example.com","password":"` + strings.Repeat("p", 129) + `","first_name":"` + strings.Repeat("é", 101) + `","last_name":"B"}`,
		`{}`, `{ }`, `[]`, `null`, `""`, `{"a":1} {"b":2}`, `{"a":1}x`, `{"a":1} `, `{"username":"ada"`, `{"username":`, `{`, ``,
		"\xef\xbb\xbf{}", "{\"username\":\"\xff\xfe\"}", `{"username":"\xff\xfe"}`, `{"username":"a\\u0000b"}`, `{"username":"\u00"}`,
		`{"username":"` + strings.Repeat("x", maxJSONBytes) + `"}`,
		`{"padding":"` + strings.Repeat("x", maxJSONBytes-15) + `"}`,
		strings.Repeat("[", 10000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := signup(t, s, "application/json", body)

		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{' || len(body) > maxJSONBytes {
			return
		}
		if !ok {
			t.Fatalf("a JSON object was refused: %q", body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{
			"username": req.fields.Username, "password": req.fields.Password, "email": req.fields.Email,
			"first_name": req.fields.FirstName, "last_name": req.fields.LastName, "gender": req.fields.Gender,
			"client_id": req.form.Get("client_id"), "client_secret": req.form.Get("client_secret"),
		}
		for _, name := range signupFieldNames {
			v, sent := raw[name]
			sent = sent && string(v) != "null"
			if req.fields.present[name] != sent {
				t.Fatalf("%s: present %v, sent %v", name, req.fields.present[name], sent)
			}
			if !sent {
				continue
			}
			var str string
			if err := json.Unmarshal(v, &str); err == nil {
				if got[name] != str {
					t.Fatalf("%s: read %q, sent %q", name, got[name], str)
				}
			} else if !slices.ContainsFunc(req.errs, func(fe FieldError) bool { return fe.Field == name && fe.Code == "invalid" }) {
				t.Fatalf("%s: %s is not a string, and no error says so: %+v", name, v, req.errs)
			}
		}
	})
}

// fuzzBoundary is the boundary of the raw multipart bodies.
const fuzzBoundary = "fuzz"

// FuzzSignupMultipart fuzzes multipart signups twice over: a body built with
// mime/multipart from fuzzed field values, a picture and a boundary, and raw
// bytes with the fixed boundary "fuzz". A well-formed body without a picture
// whose values hold no boundary is always read, each field as sent (or a
// too_long error beyond 4 KiB).
func FuzzSignupMultipart(f *testing.F) {
	s := newFuzzServer(f)
	pngImage := tinyPNG(f)
	gifImage := tinyGIF(f)
	part := func(name, value string) string {
		return "--fuzz\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
	}
	good := part("username", "ada") + part("password", "a sturdy passphrase") + part("email", "ada@example.com") +
		part("first_name", "Ada") + part("last_name", "Lovelace") + part("gender", "female") + part("client_id", "mobile")
	picturePart := "--fuzz\r\nContent-Disposition: form-data; name=\"picture\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n" + string(pngImage) + "\r\n"
	raws := []string{
		good + "--fuzz--\r\n",
		good + picturePart + "--fuzz--\r\n",
		good + picturePart + picturePart + "--fuzz--\r\n",
		good + "--fuzz\r\nContent-Disposition: form-data; name=\"picture\"; filename=\"a.png\"\r\n\r\nnot an image\r\n--fuzz--\r\n",
		good + "--fuzz\r\nContent-Disposition: form-data; name=\"picture\"\r\n\r\n\r\n--fuzz--\r\n",
		good,               // no closing delimiter
		good[:len(good)/2], // cut short
		"--fuzz--\r\n",     // no parts
		"",                 // nothing at all
		"preamble\r\n" + good + "--fuzz--\r\nepilogue",
		strings.ReplaceAll(good+"--fuzz--\r\n", "\r\n", "\n"),
		part("username", "ada") + part("username", "bob") + part("password", "x") + "--fuzz--\r\n",
		part("username", strings.Repeat("a", maxFieldBytes+1)) + "--fuzz--\r\n",
		part("nickname", strings.Repeat("a", maxFieldBytes+1)) + "--fuzz--\r\n",
		part("", "no name") + "--fuzz--\r\n",
		"--fuzz\r\nContent-Disposition: attachment; name=\"username\"\r\n\r\nada\r\n--fuzz--\r\n",
		"--fuzz\r\nContent-Disposition: form-data; name=username\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nad=61=\r\n\r\n--fuzz--\r\n",
		"--fuzz\r\nContent-Disposition: form-data; name*=UTF-8''user%6Eame\r\n\r\nada\r\n--fuzz--\r\n",
		"--fuzz\r\nContent-Type: multipart/mixed; boundary=inner\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n--inner\r\n\r\nada\r\n--inner--\r\n--fuzz--\r\n",
		"--fuzz\r\nX: " + strings.Repeat("h", 20000) + "\r\n\r\nv\r\n--fuzz--\r\n",
		"--fuzz\r\nbroken header\r\n\r\nv\r\n--fuzz--\r\n",
		strings.Repeat(part("x", "y"), maxParts+1) + "--fuzz--\r\n",
		"--fuzzy\r\n\r\nv\r\n--fuzz--\r\n",
	}
	type fields struct{ username, password, email, first, last, gender, clientID string }
	ada := fields{"ada", "a sturdy passphrase", "ada@example.com", "Ada", "Lovelace", "female", "mobile"}
	add := func(v fields, pic []byte, boundary string, raw string) {
		f.Add(v.username, v.password, v.email, v.first, v.last, v.gender, v.clientID, pic, boundary, []byte(raw))
	}
	add(ada, nil, "", "")
	add(ada, pngImage, "", "")
	add(ada, gifImage, "simple-boundary", "")
	add(ada, []byte("GIF89a"), "", "")
	add(fields{" ADA ", "twelve chars", "Ada@Example.Com", " Ada ", "\tL\t", "male", ""}, nil, "--", "")
	add(fields{"a\r\n--b", "p\r\n--b--\r\n", "e", "f", "l", "g", "c"}, nil, "b", "")
	add(fields{"ada", strings.Repeat("p", maxFieldBytes+1), "x@y.z", "A", "B", "", ""}, nil, "", "")
	add(fields{"ada", "a sturdy passphrase", "ada@example.com", "A\x00", "\u202eB", "unspecified", ""}, nil, strings.Repeat("b", 70), "")
	add(fields{"ada", "a sturdy passphrase", "ada@example.com", "A", "B", "other", ""}, nil, strings.Repeat("b", 71), "")
	for _, raw := range raws {
		add(fields{}, nil, "", raw)
	}

	f.Fuzz(func(t *testing.T, username, password, email, first, last, gender, clientID string, pic []byte, boundary string, raw []byte) {
		// The raw body.
		if len(raw) > 0 {
			signup(t, s, "multipart/form-data; boundary="+fuzzBoundary, raw)
		}

		// The body built from the fields.
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		if boundary != "" {
			mw.SetBoundary(boundary) // an invalid one leaves the random one
		}
		sent := map[string]string{}
		clean := true // no value holds the boundary
		for _, fv := range [][2]string{
			{"username", username}, {"password", password}, {"email", email},
			{"first_name", first}, {"last_name", last}, {"gender", gender}, {"client_id", clientID},
		} {
			if fv[1] == "" {
				continue
			}
			w, err := mw.CreateFormField(fv[0])
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, fv[1])
			sent[fv[0]] = fv[1]
			clean = clean && !strings.Contains(fv[1], "--"+mw.Boundary())
		}
		if len(pic) > 0 {
			w, err := mw.CreateFormFile("picture", "picture.img")
			if err != nil {
				t.Fatal(err)
			}
			w.Write(pic)
			clean = clean && !bytes.Contains(pic, []byte("--"+mw.Boundary()))
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		req, ok := signup(t, s, mw.FormDataContentType(), body.Bytes())
		if !clean || len(pic) > 0 {
			return
		}
		if !ok {
			t.Fatalf("a well-formed multipart body was refused: %q", body.Bytes())
		}
		got := map[string]string{
			"username": req.fields.Username, "password": req.fields.Password, "email": req.fields.Email,
			"first_name": req.fields.FirstName, "last_name": req.fields.LastName, "gender": req.fields.Gender,
			"client_id": req.form.Get("client_id"),
		}
		for name, v := range sent {
			switch {
			case !req.fields.present[name]:
				t.Fatalf("%s was sent but is not present", name)
			case len(v) > maxFieldBytes:
				if !slices.Contains(req.errs, FieldError{Field: name, Code: "too_long", Message: "At most 4 KiB."}) {
					t.Fatalf("%s has %d bytes, and no error says so: %+v", name, len(v), req.errs)
				}
			case got[name] != v:
				t.Fatalf("%s: read %q, sent %q", name, got[name], v)
			}
		}
		for name := range got {
			if _, ok := sent[name]; !ok && req.fields.present[name] {
				t.Fatalf("%s was not sent but is present", name)
			}
		}
	})
}

func tinyPNG(tb testing.TB) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.NRGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func tinyGIF(tb testing.TB) []byte {
	img := image.NewPaletted(image.Rect(0, 0, 2, 2), color.Palette{color.Black, color.White})
	img.SetColorIndex(0, 0, 1)
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
