package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The refresh scenario needs each request built from the answer to the
// previous request of its chain: the refresh token rotates on every use,
// and presenting a used one revokes the whole chain. vegeta's workers are
// anonymous and its results do not carry the request, so the chains live in
// a pool beside it: the targeter takes a free chain and sends its current
// refresh token, tagged with the chain's number in a header; the HTTP
// transport under vegeta's client sees the answer, stores the new refresh
// token in the chain and frees it. With as many chains as workers, each
// chain is in use by one request at a time and rotates strictly in order,
// just as a worker that owned it would rotate it; no request waits for a
// chain except while a broken chain is being logged in again.

// chainHeader carries the chain number from the targeter to the transport.
// The server ignores it.
const chainHeader = "X-Idp-Load-Chain"

// chain is one login and its refreshes.
type chain struct {
	id           int
	user         *user
	refreshToken string
	// header is the chain's request header, built on its first request
	// (vegeta copies it into each request).
	header http.Header
}

// chainPool holds the refresh chains and is the transport of the load's
// client. Requests without chainHeader pass through untouched.
type chainPool struct {
	base    http.RoundTripper
	relogin func(context.Context, *chain) // starts a new chain after a failure
	ctx     context.Context
	client  string
	// authorization, when set, authenticates client (HTTP Basic), for a
	// peer whose password-grant client is confidential.
	authorization string
	chains        []*chain
	free          chan *chain

	// signatures is the number of JWTs in a refresh answer, from the first
	// successful one: the access token, plus the ID token with openid.
	signatures atomic.Int64
	relogins   atomic.Int64
}

func newChainPool(base http.RoundTripper, relogin func(context.Context, *chain)) *chainPool {
	return &chainPool{base: base, relogin: relogin, ctx: context.Background()}
}

// reset starts one chain per user from the refresh token its signup
// returned.
func (p *chainPool) reset(ctx context.Context, users []*user, client string) {
	p.ctx, p.client = ctx, client
	p.chains = make([]*chain, len(users))
	p.free = make(chan *chain, len(users))
	for i, u := range users {
		p.chains[i] = &chain{id: i, user: u, refreshToken: u.refreshToken}
		p.free <- p.chains[i]
	}
}

// targeter sends the refresh grant of the next free chain. It gives up (and
// so stops the attack) when no chain frees up within wait.
func (p *chainPool) targeter(tokenURL string, wait time.Duration) vegeta.Targeter {
	bodyPrefix := "client_id=" + url.QueryEscape(p.client) + "&grant_type=refresh_token&refresh_token="
	return func(t *vegeta.Target) error {
		var c *chain
		select {
		case c = <-p.free:
		default:
			timer := time.NewTimer(wait)
			defer timer.Stop()
			select {
			case c = <-p.free:
			case <-timer.C:
				return errors.New("no refresh chain came free")
			}
		}
		if c.header == nil {
			c.header = http.Header{
				"Content-Type": {"application/x-www-form-urlencoded"},
				chainHeader:    {strconv.Itoa(c.id)},
			}
			if p.authorization != "" {
				c.header.Set("Authorization", p.authorization)
			}
		}
		t.Method, t.URL, t.Header = http.MethodPost, tokenURL, c.header
		// What url.Values{…}.Encode() gives, without its map and sort.
		t.Body = []byte(bodyPrefix + url.QueryEscape(c.refreshToken))
		return nil
	}
}

// RoundTrip sends req; for a chain's request it reads the answer, moves the
// chain on to the new refresh token and frees it. A chain whose refresh
// failed is logged in again before it is freed.
func (p *chainPool) RoundTrip(req *http.Request) (*http.Response, error) {
	id := req.Header.Get(chainHeader)
	if id == "" {
		return p.base.RoundTrip(req)
	}
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 || n >= len(p.chains) {
		return nil, errors.New("idp-load: bad chain number")
	}
	c := p.chains[n]
	resp, err := p.base.RoundTrip(req)
	if err != nil {
		p.broke(c)
		return nil, err
	}
	body, err := readBody(resp)
	if err != nil {
		p.broke(c)
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	next, ok := p.rotated(resp.StatusCode, body, c.refreshToken)
	if !ok {
		p.broke(c)
		return resp, nil
	}
	c.refreshToken = next
	p.free <- c
	return resp, nil
}

// readBody reads and closes resp's body, into one buffer of its length when
// the server gave it.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	if n := resp.ContentLength; n >= 0 && n <= 1<<20 {
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(resp.Body)
}

// rotated checks a refresh answer: 200, with an access token and a refresh
// token other than the one presented, which it returns. The first
// successful answer is decoded whole, to count its signatures; after it the
// two tokens are read straight from the body when it is written as
// encoding/json writes it, which costs the load generator a fraction of
// decoding the object (the JWTs are most of it).
func (p *chainPool) rotated(status int, body []byte, presented string) (string, bool) {
	if status != http.StatusOK {
		return "", false
	}
	if p.signatures.Load() != 0 {
		access, okA := jsonMember(body, "access_token")
		next, okR := jsonMember(body, "refresh_token")
		if okA && okR {
			if access == "" || next == "" || next == presented {
				return "", false
			}
			return next, true
		}
	}
	var tok tokenResponse
	if json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == presented {
		return "", false
	}
	if p.signatures.Load() == 0 {
		p.signatures.Store(int64(countJWTs(tok.AccessToken, tok.IDToken)))
	}
	return tok.RefreshToken, true
}

// jsonMember returns the string member name of the JSON object body when it
// is written compactly with the value unescaped, as encoding/json writes a
// token; ok is false otherwise (absent, escaped, or spaced), and the caller
// decodes the object. A quote inside a JSON string is always escaped, so
// `,"name":"` or `{"name":"` in a valid object starts a member, never the
// inside of a value.
func jsonMember(body []byte, name string) (value string, ok bool) {
	key := `"` + name + `":"`
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(key))
		if j < 0 {
			return "", false
		}
		j += i
		if j > 0 && (body[j-1] == '{' || body[j-1] == ',') {
			v := body[j+len(key):]
			end := bytes.IndexByte(v, '"')
			if end < 0 || bytes.IndexByte(v[:end], '\\') >= 0 {
				return "", false
			}
			return string(v[:end]), true
		}
		i = j + 1
	}
}

// broke logs c in again, in the background, and frees it.
func (p *chainPool) broke(c *chain) {
	p.relogins.Add(1)
	go func() {
		p.relogin(p.ctx, c)
		p.free <- c
	}()
}

// countJWTs counts the compact JWS among tokens: each is one signature.
func countJWTs(tokens ...string) int {
	n := 0
	for _, t := range tokens {
		if t != "" && strings.Count(t, ".") == 2 {
			n++
		}
	}
	return n
}
