package keys

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrInvalidToken is wrapped by every error Verify returns.
var ErrInvalidToken = errors.New("keys: invalid token")

// reloadEvery bounds the reloads an unknown kid triggers: tokens with
// made-up kids must not turn into a query each.
const reloadEvery = time.Second

// acceptedAlgs is the only algorithm Verify accepts. Naming it up front is
// what refuses alg none, HS256 keyed with the public key, and the rest.
var acceptedAlgs = []jose.SignatureAlgorithm{jose.RS256}

// Sign returns a compact RS256 JWS of payload signed with the active key,
// with the header {alg: RS256, kid, typ} (typ omitted when empty). It fails
// with ErrNoActiveKey before the first Load. typ should come from a small
// fixed set (at+jwt, JWT, ...): the encoded header is cached per value.
//
// The JWS is built here rather than by go-jose, which marshals the header
// twice and base64-encodes the whole token twice per signature (once to
// sign, once to serialize): some 30 µs of a 1.1 ms signature, on every
// token. The bytes are the ones go-jose's signer gives (its header's
// members sorted, as here; RSASSA-PKCS1-v1_5 is deterministic), which the
// tests check.
func (m *Manager) Sign(payload []byte, typ string) (string, error) {
	k := m.snap.Load().active
	if k == nil {
		return "", ErrNoActiveKey
	}
	header, err := k.header(typ)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	n := len(header) + enc.EncodedLen(len(payload))
	jws := make([]byte, n, n+1+enc.EncodedLen(k.priv.Size()))
	copy(jws, header)
	enc.Encode(jws[len(header):], payload)
	sum := sha256.Sum256(jws)
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	jws = append(jws, '.')
	return string(enc.AppendEncode(jws, sig)), nil
}

// jwsHeader is the protected header Sign writes, its members in the order
// go-jose writes them (sorted by name).
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ,omitempty"`
}

// header returns the base64url-encoded protected header for typ followed by
// the '.' that ends it, building it on first use. Two goroutines may build
// one each the first time; either is fine.
func (k *loadedKey) header(typ string) (string, error) {
	if h, ok := k.headers.Load(typ); ok {
		return h.(string), nil
	}
	b, err := json.Marshal(jwsHeader{Alg: Algorithm, Kid: k.kid, Typ: typ})
	if err != nil {
		return "", fmt.Errorf("keys: header for %s: %w", k.kid, err)
	}
	actual, _ := k.headers.LoadOrStore(typ, base64.RawURLEncoding.EncodeToString(b)+".")
	return actual.(string), nil
}

// Verified is the result of a successful Verify.
type Verified struct {
	Payload []byte
	KeyID   string
	Type    string // the typ header, "" when absent
}

// Verify checks a compact JWS against the published keys, choosing the key
// by kid. Only RS256 is accepted; a missing or unknown kid is refused. When
// the kid is unknown it reloads from the database (at most once per second)
// and retries once, because another process may have promoted a key this one
// has not loaded yet (`idp keys rotate --now`). Every error wraps
// ErrInvalidToken.
func (m *Manager) Verify(token string) (Verified, error) {
	jws, err := jose.ParseSignedCompact(token, acceptedAlgs)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return Verified{}, fmt.Errorf("%w: want exactly one signature", ErrInvalidToken)
	}
	// go-jose decodes base64 leniently (line breaks, unused trailing bits),
	// so one token has other spellings. Callers key revocation by the
	// token's text: only the canonical spelling may verify.
	if canonical, err := jws.CompactSerialize(); err != nil || canonical != token {
		return Verified{}, fmt.Errorf("%w: not in canonical compact form", ErrInvalidToken)
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" {
		return Verified{}, fmt.Errorf("%w: no kid in the header", ErrInvalidToken)
	}
	k := m.snap.Load().keys[h.KeyID]
	if k == nil {
		k = m.reloadFor(h.KeyID)
		if k == nil {
			return Verified{}, fmt.Errorf("%w: unknown kid", ErrInvalidToken)
		}
	}
	typ := ""
	if v, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		s, isString := v.(string)
		if !isString {
			return Verified{}, fmt.Errorf("%w: typ header is not a string", ErrInvalidToken)
		}
		typ = s
	}
	payload, err := jws.Verify(&k.priv.PublicKey)
	if err != nil {
		return Verified{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return Verified{Payload: payload, KeyID: k.kid, Type: typ}, nil
}

// reloadFor reloads the keys when kid is unknown, unless a reload happened
// within the last second, and returns the key if it is now known.
func (m *Manager) reloadFor(kid string) *loadedKey {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	// Someone else may have reloaded while we waited.
	if k := m.snap.Load().keys[kid]; k != nil {
		return k
	}
	now := m.opts.Now()
	if !m.lastReload.IsZero() && now.Sub(m.lastReload) < reloadEvery && now.Sub(m.lastReload) >= 0 {
		return nil
	}
	m.lastReload = now
	// Verify has no context: bound the wait so a stuck database cannot hold
	// a request (and every other unknown-kid request queued on reloadMu).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Load(ctx); err != nil {
		m.log.Warn("keys: reload for an unknown kid failed", "err", err)
		return nil
	}
	return m.snap.Load().keys[kid]
}
