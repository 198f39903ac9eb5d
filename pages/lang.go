package pages

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

//go:embed messages/*.json
var messageFiles embed.FS

// languages returns the languages the pages speak, the default first.
func languages() []language.Tag { return []language.Tag{language.English, language.German} }

// Languages lists the BCP 47 tags of the languages the pages speak, the
// default first: discovery's ui_locales_supported.
func Languages() []string {
	var out []string
	for _, t := range languages() {
		out = append(out, t.String())
	}
	return out
}

// catalog maps a message key to its text in one language. A text may hold
// fmt verbs (%s, %d) for the arguments the template passes.
type catalog map[string]string

// loadCatalogs reads messages/<lang>.json for every language.
func loadCatalogs() (map[language.Tag]catalog, error) {
	out := make(map[language.Tag]catalog)
	for _, tag := range languages() {
		b, err := messageFiles.ReadFile("messages/" + tag.String() + ".json")
		if err != nil {
			return nil, fmt.Errorf("pages: messages for %s: %w", tag, err)
		}
		var c catalog
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("pages: messages for %s: %w", tag, err)
		}
		out[tag] = c
	}
	return out, nil
}

// Bounds on what the language choice reads, so that a huge header or
// parameter costs nothing (x/text parses whatever it is given).
const (
	maxLangHeader = 512
	maxUILocales  = 16
)

// Language picks the page language: the first of the space-separated BCP 47
// tags of ui_locales (OIDC Core §3.1.2.1) that the pages speak, else the best
// match for Accept-Language, else English.
func (p *Pages) Language(r *http.Request, uiLocales string) language.Tag {
	if uiLocales != "" && len(uiLocales) <= maxLangHeader {
		var tags []language.Tag
		for _, s := range strings.Fields(uiLocales) {
			if t, err := language.Parse(s); err == nil {
				tags = append(tags, t)
			}
			if len(tags) == maxUILocales {
				break
			}
		}
		if tag, ok := p.match(tags); ok {
			return tag
		}
	}
	if h := r.Header.Get("Accept-Language"); h != "" && len(h) <= maxLangHeader {
		if tags, _, err := language.ParseAcceptLanguage(h); err == nil {
			if tag, ok := p.match(tags); ok {
				return tag
			}
		}
	}
	return p.langs[0]
}

// match returns the supported language that best fits tags, or false when
// none fits at all (the matcher then only offers its default).
func (p *Pages) match(tags []language.Tag) (language.Tag, bool) {
	if len(tags) == 0 {
		return language.Tag{}, false
	}
	_, i, conf := p.matcher.Match(tags...)
	if conf == language.No {
		return language.Tag{}, false
	}
	return p.langs[i], true
}
