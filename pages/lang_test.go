package pages

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	tparse "text/template/parse"
)

func TestLanguageChoice(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	for _, tc := range []struct {
		uiLocales, acceptLanguage, want string
	}{
		{"", "", "en"},
		{"de", "en-US,en;q=0.9", "de"}, // ui_locales wins over the header
		{"en", "de-DE,de;q=0.9", "en"}, // in both directions
		{"fr-CA de-AT", "en", "de"},    // the first one spoken
		{"fr", "de-CH,de;q=0.8", "de"}, // none spoken: the header decides
		{"", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "fr-FR,de;q=0.5", "de"},
		{"", "fr-FR,es;q=0.5", "en"}, // none spoken: English
		{"%%% ***", "de", "de"},      // malformed ui_locales ignored
		{"", "not a language header!!", "en"},
		{"", strings.Repeat("de,", 1000), "en"}, // oversized header ignored
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.acceptLanguage != "" {
			r.Header.Set("Accept-Language", tc.acceptLanguage)
		}
		if got := p.Language(r, tc.uiLocales).String(); got != tc.want {
			t.Errorf("ui_locales %q, Accept-Language %.40q: %s, want %s", tc.uiLocales, tc.acceptLanguage, got, tc.want)
		}
	}
}

func TestGermanPage(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Language", "en-US,en;q=0.9")
	w := render(t, p, r, http.StatusOK, "de", Login{})
	doc := parse(t, w)
	if lang := attrVal(one(t, doc, "html", tag("html")), "lang"); lang != "de" {
		t.Errorf("<html lang=%q>, want de", lang)
	}
	if got := text(one(t, doc, "label for password", tag("label", "for", "password"))); got != "Passwort" {
		t.Errorf("password label %q, want Passwort", got)
	}
	if w.Header().Get("Content-Language") != "de" {
		t.Errorf("Content-Language %q", w.Header().Get("Content-Language"))
	}
}

var verbRE = regexp.MustCompile(`%[a-z]`)

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	en := cats[languages()[0]]
	for tag, c := range cats {
		for k, v := range en {
			other, ok := c[k]
			if !ok {
				t.Errorf("%s lacks %q", tag, k)
				continue
			}
			if a, b := verbRE.FindAllString(v, -1), verbRE.FindAllString(other, -1); !slices.Equal(a, b) {
				t.Errorf("%q: verbs %v in en, %v in %s", k, a, b, tag)
			}
			if strings.TrimSpace(other) == "" {
				t.Errorf("%s: %q is empty", tag, k)
			}
		}
		for k := range c {
			if _, ok := en[k]; !ok {
				t.Errorf("%s has %q, which en lacks", tag, k)
			}
		}
	}
}

// templateKeys returns the message keys that the templates pass as string
// constants to T ({{$.T "key"}}, {{.T "key"}}), and the constants passed
// to CSRF.
func templateKeys(t *testing.T, p *Pages) (keys, purposes map[string]bool) {
	keys, purposes = map[string]bool{}, map[string]bool{}
	var walk func(tparse.Node)
	callee := func(n tparse.Node) string {
		switch n := n.(type) {
		case *tparse.FieldNode:
			return n.Ident[len(n.Ident)-1]
		case *tparse.VariableNode:
			return n.Ident[len(n.Ident)-1]
		}
		return ""
	}
	walk = func(n tparse.Node) {
		switch n := n.(type) {
		case *tparse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *tparse.ActionNode:
			walk(n.Pipe)
		case *tparse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *tparse.CommandNode:
			if len(n.Args) >= 2 {
				if s, ok := n.Args[1].(*tparse.StringNode); ok {
					switch callee(n.Args[0]) {
					case "T":
						keys[s.Text] = true
					case "CSRF":
						purposes[s.Text] = true
					}
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		case *tparse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *tparse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *tparse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *tparse.TemplateNode:
			walk(n.Pipe)
		}
	}
	for _, set := range p.templates {
		for _, tmpl := range set.Templates() {
			if tmpl.Tree != nil {
				walk(tmpl.Tree.Root)
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in the templates: the walk misses calls", len(keys))
	}
	return keys, purposes
}

// messageConstants returns the values of the Message constants of data.go
// and the titles the pages declare.
func messageConstants(t *testing.T) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "data.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			if id, ok := n.Type.(*ast.Ident); ok && id.Name == "Message" {
				for _, v := range n.Values {
					if lit, ok := v.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "title" {
				if lit, ok := n.Value.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
		return true
	})
	if len(out) < 20 {
		t.Fatalf("found only %d messages in data.go", len(out))
	}
	return out
}

func TestEveryKeyIsInEveryCatalog(t *testing.T) {
	p := newPages(t, "http://localhost:8080")
	keys, purposes := templateKeys(t, p)
	for _, k := range messageConstants(t) {
		keys[k] = true
	}
	for _, s := range []string{"openid", "profile", "email", "offline_access", "users:stats"} {
		keys["scope."+s] = true
	}
	for tag, c := range p.catalogs {
		for k := range keys {
			if _, ok := c[k]; !ok {
				t.Errorf("%s catalog lacks %q", tag, k)
			}
		}
	}
	known := map[string]bool{}
	for _, v := range formPurpose {
		known[v] = true
	}
	for pur := range purposes {
		if !known[pur] {
			t.Errorf("a template mints CSRF purpose %q, which no Purpose constant names", pur)
		}
	}
	if len(purposes) != len(known) {
		t.Errorf("templates mint %d purposes, %d constants", len(purposes), len(known))
	}
}
