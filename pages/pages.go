// Package pages renders the HTML pages of the browser sign-in (CONTRACT §6):
// login, consent, logout, error, password reset, sign-up and the form_post
// response, in English and German, with the response headers, the CSRF
// protection and the stylesheet they share. Handlers own the flow; this
// package owns what the browser gets.
package pages

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/text/language"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/style.css
var stylesheet []byte

//go:embed static/passkey.js
var passkeyScript []byte

// PasskeyScriptPath is where Handler serves the login page's passkey
// script, the one script of these pages besides the form_post page's.
const PasskeyScriptPath = "/pages/passkey.js"

// StylePath is where Handler serves the stylesheet.
const StylePath = "/pages/style.css"

// styleMaxAge is how long browsers may keep the stylesheet. Pages link it
// with its hash in the query, so a new version is fetched at once; the
// bound only limits how long an old one lingers unused.
const styleMaxAge = 86400

// Paths are the routes the pages link and post to.
type Paths struct {
	Login, Consent, Logout, Forgot, Signup, Account string
}

// DefaultPaths are the routes used when Config.Paths leaves one empty.
func DefaultPaths() Paths {
	return Paths{
		Login:   "/login",
		Consent: "/consent",
		Logout:  "/oauth2/logout",
		Forgot:  "/login/forgot",
		Signup:  "/login/signup",
		Account: "/account",
	}
}

// Config holds what New needs.
type Config struct {
	// Issuer is the public base URL; an https one makes the CSRF cookie
	// Secure and __Host- prefixed.
	Issuer string
	// CSRFKey signs the forms' CSRF tokens: at least 32 random bytes, the
	// same on every replica.
	CSRFKey []byte
	// Paths are the routes; empty fields take DefaultPaths.
	Paths Paths
}

// Pages renders the pages. It is safe for concurrent use.
type Pages struct {
	csrf      *CSRF
	paths     Paths
	templates map[string]*template.Template
	catalogs  map[language.Tag]catalog
	langs     []language.Tag
	matcher   language.Matcher
	styleTag  string // hex SHA-256 prefix of the stylesheet
	scriptTag string // the same of the passkey script
	origin    string // scheme://host of the issuer
}

// New parses the templates and catalogs once.
func New(cfg Config) (*Pages, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("pages: issuer %q is not an http(s) URL", cfg.Issuer)
	}
	csrf, err := NewCSRF(cfg.CSRFKey, u.Scheme == "https")
	if err != nil {
		return nil, err
	}
	p := &Pages{csrf: csrf, paths: cfg.Paths, langs: languages(), origin: u.Scheme + "://" + u.Host}
	def := DefaultPaths()
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&p.paths.Login, def.Login}, {&p.paths.Consent, def.Consent}, {&p.paths.Logout, def.Logout},
		{&p.paths.Forgot, def.Forgot}, {&p.paths.Signup, def.Signup}, {&p.paths.Account, def.Account},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
	p.matcher = language.NewMatcher(p.langs)
	if p.catalogs, err = loadCatalogs(); err != nil {
		return nil, err
	}
	if p.templates, err = parseTemplates(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(stylesheet)
	p.styleTag = hex.EncodeToString(sum[:8])
	sum = sha256.Sum256(passkeyScript)
	p.scriptTag = hex.EncodeToString(sum[:8])
	return p, nil
}

// parseTemplates makes one template set per page: the layout plus the
// page's "content".
func parseTemplates() (map[string]*template.Template, error) {
	layout, err := template.ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("pages: layout: %w", err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := make(map[string]*template.Template)
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := layout.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFiles, n)
		}
		if err != nil {
			return nil, fmt.Errorf("pages: %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// CSRF returns the guard whose Verify the POST handlers call.
func (p *Pages) CSRF() *CSRF { return p.csrf }

// Paths returns the routes the pages use.
func (p *Pages) Paths() Paths { return p.paths }

// view is what the templates see: the page's data and the per-response
// helpers (text, CSRF tokens).
type view struct {
	Lang     string
	Title    Message
	Status   int
	Page     Page
	Paths    Paths
	StyleURL string
	// PasskeyScriptURL is the passkey script, its hash in the query.
	PasskeyScriptURL string
	Nonce            string

	p   *Pages
	cat catalog
	w   http.ResponseWriter
	r   *http.Request
}

// T returns the text of key in the page's language, formatted with args.
// A key missing in the language falls back to English, then to the key
// itself (a test keeps both from happening).
func (v *view) T(key Message, args ...any) string {
	s, ok := v.cat[string(key)]
	if !ok {
		if s, ok = v.p.catalogs[v.p.langs[0]][string(key)]; !ok {
			s = string(key)
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Scope returns a scope in words: its text when the catalogs know it, else
// its name.
func (v *view) Scope(name string) string {
	key := "scope." + name
	if _, ok := v.cat[key]; ok {
		return v.T(Message(key))
	}
	return name
}

// FieldError returns the text of the error a Signup or Account page has
// for field, or "".
func (v *view) FieldError(field string) string {
	var errs map[string]Message
	switch p := v.Page.(type) {
	case Signup:
		errs = p.Errors
	case Account:
		errs = p.Errors
	}
	if m := errs[field]; m != "" {
		return v.T(m)
	}
	return ""
}

// CSRF returns the token for a form of purpose.
func (v *view) CSRF(purpose string) string { return v.p.csrf.Token(v.w, v.r, purpose) }

// Render writes page with status. uiLocales is the ui_locales parameter of
// the request the page serves ("" when none). The page is rendered into a
// buffer first, so a template error sends a plain 500 and never half a page;
// the error is returned for the caller to log.
func (p *Pages) Render(w http.ResponseWriter, r *http.Request, status int, uiLocales string, page Page) error {
	info := page.info()
	t, ok := p.templates[info.template]
	if !ok {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("pages: no template %q", info.template)
	}
	lang := p.Language(r, uiLocales)
	v := &view{
		Lang:             lang.String(),
		Title:            info.title,
		Status:           status,
		Page:             page,
		Paths:            p.paths,
		StyleURL:         StylePath + "?v=" + p.styleTag,
		PasskeyScriptURL: PasskeyScriptPath + "?v=" + p.scriptTag,
		p:                p,
		cat:              p.catalogs[lang],
		w:                w,
		r:                r,
	}
	if info.formPost {
		var b [16]byte
		rand.Read(b[:])
		v.Nonce = base64.StdEncoding.EncodeToString(b[:])
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return fmt.Errorf("pages: render %s: %w", info.template, err)
	}
	h := w.Header()
	setSecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", v.Lang)
	h.Set("Content-Security-Policy", csp(info, v.Nonce))
	h.Add("Vary", "Accept-Language")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// setSecurityHeaders sets what every answer of these pages carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// csp is the Content-Security-Policy of a page: nothing but the stylesheet,
// forms only to this site (and where their answer redirects), never framed.
// The form_post page may post only to the client and run only its own
// script.
func csp(info pageInfo, nonce string) string {
	formAction := "'self'"
	if info.formPost {
		formAction = "'none'"
		if src := CSPSource(info.redirect); src != "" {
			formAction = src
		}
	} else if src := CSPSource(info.redirect); src != "" {
		formAction += " " + src
	}
	policy := "default-src 'none'; style-src 'self'; form-action " + formAction +
		"; frame-ancestors 'none'; base-uri 'none'"
	if nonce != "" {
		policy += "; script-src 'nonce-" + nonce + "'"
	} else if info.script {
		// The passkey script, and the options it fetches.
		policy += "; script-src 'self'; connect-src 'self'"
	}
	return policy
}

var (
	schemePattern = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)
	hostPattern   = regexp.MustCompile(`^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$`)
)

// CSPSource is the CSP source expression that allows uri: its origin for
// http(s), its scheme ("com.example.app:") for a custom scheme. It returns ""
// for anything it cannot express safely, which leaves the target blocked.
func CSPSource(uri string) string {
	if uri == "" {
		return ""
	}
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if !schemePattern.MatchString(scheme) {
		return ""
	}
	switch scheme {
	case "http", "https":
	case "javascript", "data", "vbscript", "blob", "filesystem", "about", "file":
		// Never a redirect URI; allowing one would open the form to script.
		return ""
	default:
		return scheme + ":"
	}
	host := strings.ToLower(u.Host)
	if !hostPattern.MatchString(host) {
		return ""
	}
	return scheme + "://" + host
}

// SeeOther answers with 303 See Other to location, which makes the browser
// GET it (after a POST, 307 would repeat the POST, password included). The
// body is a link, whatever the method, for clients that do not follow.
func SeeOther(w http.ResponseWriter, r *http.Request, location string) {
	h := w.Header()
	setSecurityHeaders(h)
	h.Set("Location", location)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusSeeOther)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, "<a href=\"%s\">See Other</a>.\n", template.HTMLEscapeString(location))
	}
}

// URL is the absolute URL of a path of this site.
func (p *Pages) URL(path string) string { return p.origin + path }

// Handler serves the stylesheet at StylePath and the passkey script at
// PasskeyScriptPath, cacheable, with an ETag. Mount it at /pages/ without
// stripping the prefix.
func (p *Pages) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var etag, ctype string
		var body []byte
		switch r.URL.Path {
		case StylePath:
			etag, ctype, body = `"`+p.styleTag+`"`, "text/css; charset=utf-8", stylesheet
		case PasskeyScriptPath:
			etag, ctype, body = `"`+p.scriptTag+`"`, "text/javascript; charset=utf-8", passkeyScript
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "public, max-age="+strconv.Itoa(styleMaxAge))
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	})
}

// etagMatches reports whether an If-None-Match list names etag (weakly, as
// RFC 9110 §13.1.2 says for If-None-Match).
func etagMatches(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
		if e == etag || e == "*" {
			return true
		}
	}
	return false
}
