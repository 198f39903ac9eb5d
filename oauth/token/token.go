// Package token holds what idp's tokens are: the fosite Session kept with
// every grant, the claims of RFC 9068 JWT access tokens, the Strategy that
// issues and strictly parses access and refresh tokens (with a cache of
// verified access tokens) and derives a rotated refresh token's successor,
// and the bearer syntax of the Authorization header. It knows no storage and
// no endpoint.
package token

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"idp/keys"
)

// Signer signs and verifies compact JWS with the service's signing keys.
// *keys.Manager implements it.
type Signer interface {
	Sign(payload []byte, typ string) (string, error)
	Verify(token string) (keys.Verified, error)
}

// The JOSE "typ" values of the tokens this service issues.
const (
	TypeAccessToken = "at+jwt" // RFC 9068 §2.1
	TypeIDToken     = "JWT"
)

// AccessClaims are the claims of an RFC 9068 access token.
type AccessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	NotBefore int64    `json:"nbf,omitempty"`
	IssuedAt  int64    `json:"iat"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
}

// Audience decodes "aud" both as a string and as an array (RFC 7519 §4.1.3).
type Audience []string

func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// Strategy issues RFC 9068 JWT access tokens signed by the current
// signing key, and leaves refresh tokens and authorization codes to fosite's
// HMAC strategy (opaque, checked against the database), decoding refresh
// tokens strictly.
type Strategy struct {
	signer Signer
	issuer string
	opaque *oauth2.HMACSHAStrategyUnPrefixed
	now    func() time.Time
	// refreshSecret signs refresh tokens (the first of
	// IDP_REFRESH_TOKEN_SECRETS, as opaque's GlobalSecret), and
	// rotationKey, derived from it, a rotated token's successor.
	refreshSecret, rotationKey []byte

	verified verifiedCache
}

// NewStrategy returns a Strategy that signs access tokens for issuer with
// signer, leaves refresh tokens and authorization codes to opaque, derives
// rotated refresh tokens' successors from refreshSecret (the secret opaque
// signs with), and reads the time from now (nil means time.Now).
func NewStrategy(signer Signer, issuer string, refreshSecret []byte, opaque *oauth2.HMACSHAStrategyUnPrefixed, now func() time.Time) (*Strategy, error) {
	if now == nil {
		now = time.Now
	}
	rotationKey, err := hkdf.Key(sha256.New, refreshSecret, nil, "idp refresh rotation", 32)
	if err != nil {
		return nil, err
	}
	return &Strategy{signer: signer, issuer: issuer, opaque: opaque, now: now,
		refreshSecret: refreshSecret, rotationKey: rotationKey}, nil
}

// verifiedCache remembers the claims of access tokens whose signature was
// checked, until they expire: an app presents the same token for each call
// of its lifetime, and the RSA verification and JSON decoding are most of the
// cost of a bearer check. Only tokens that verified are entered, keyed by a
// hash of their whole text, so nothing can be planted in it; revocation is
// checked on every request regardless.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*AccessClaims
}

// maxVerified bounds the cache; past it, it starts afresh.
const maxVerified = 50_000

func (c *verifiedCache) get(key [sha256.Size]byte) *AccessClaims {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *verifiedCache) put(key [sha256.Size]byte, claims *AccessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[sha256.Size]byte]*AccessClaims)
	}
	c.m[key] = claims
}

var _ oauth2.CoreStrategy = (*Strategy)(nil)

// JWTSignature is the signature part of a compact JWS. Like fosite's JWT
// strategy it is what the storage keys access tokens by (hashed there).
func JWTSignature(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || strings.Count(token, ".") != 2 {
		return ""
	}
	return token[i+1:]
}

// AccessTokenSignature is what fosite's introspection and revocation look
// an access token up by: its signature, and for a token whose record is on
// its chain's row (see ChainOf) the chain first, chain "." signature, so
// that the storage reads that row by its key. A token that does not verify
// gets its bare signature, which has no record.
func (s *Strategy) AccessTokenSignature(_ context.Context, token string) string {
	if c, err := s.ParseAccessToken(token); err == nil {
		if chain := ChainOf(c.ID); chain != "" {
			return chain + "." + JWTSignature(token)
		}
	}
	return JWTSignature(token)
}

func (s *Strategy) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	return s.AccessToken(r, RandomID())
}

// AccessToken signs r's access token with the token id jti, and returns it
// and its signature.
func (s *Strategy) AccessToken(r fosite.Requester, jti string) (string, string, error) {
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return "", "", fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	now := s.now()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return "", "", errors.New("oauth: access token expiry not set")
	}
	claims := AccessClaims{
		Issuer:    s.issuer,
		Subject:   sess.Subject,
		Audience:  tokenAudience(s.issuer, r.GetGrantedAudience()),
		ExpiresAt: exp.Unix(),
		IssuedAt:  now.Unix(),
		ID:        jti,
		ClientID:  r.GetClient().GetID(),
		Scope:     strings.Join(AccessScope(r), " "),
	}
	if !sess.AuthTime.IsZero() {
		claims.AuthTime = sess.AuthTime.Unix()
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", err
	}
	token, err := s.signer.Sign(payload, TypeAccessToken)
	if err != nil {
		return "", "", fmt.Errorf("oauth: sign access token: %w", err)
	}
	return token, JWTSignature(token), nil
}

// ValidateAccessToken is used by introspection after the storage lookup: the
// signature must verify against a published key and the token must be live.
func (s *Strategy) ValidateAccessToken(_ context.Context, _ fosite.Requester, token string) error {
	_, err := s.ParseAccessToken(token)
	return err
}

// ParseAccessToken verifies an access token's signature, type, issuer,
// audience and lifetime, and returns its claims. Errors wrap
// fosite.ErrTokenExpired or fosite.ErrRequestUnauthorized.
func (s *Strategy) ParseAccessToken(token string) (*AccessClaims, error) {
	key := sha256.Sum256([]byte(token))
	if c := s.verified.get(key); c != nil {
		if s.now().Unix() >= c.ExpiresAt {
			return nil, fosite.ErrTokenExpired.WithHint("The token has expired.")
		}
		return c, nil
	}
	c, err := s.verifyAccessToken(token)
	if err != nil {
		return nil, err
	}
	s.verified.put(key, c)
	return c, nil
}

// verifyAccessToken is ParseAccessToken without the cache.
func (s *Strategy) verifyAccessToken(token string) (*AccessClaims, error) {
	v, err := s.signer.Verify(token)
	if err != nil {
		return nil, fosite.ErrRequestUnauthorized.WithWrap(fmt.Errorf("%w: %w", ErrMalformed, err)).WithHint("The token signature is invalid.")
	}
	if !strings.EqualFold(v.Type, TypeAccessToken) && !strings.EqualFold(v.Type, "application/"+TypeAccessToken) {
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token is not an access token.")
	}
	var c AccessClaims
	if err := json.Unmarshal(v.Payload, &c); err != nil {
		return nil, fosite.ErrRequestUnauthorized.WithWrap(fmt.Errorf("%w: %w", ErrMalformed, err)).WithHint("The token claims are malformed.")
	}
	switch {
	case c.Issuer != s.issuer:
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token was issued by another issuer.")
	case !slices.Contains(c.Audience, s.issuer):
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token is not meant for this service.")
	case c.Subject == "" || c.ClientID == "":
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token lacks a subject or client.")
	case s.now().Unix() >= c.ExpiresAt:
		return nil, fosite.ErrTokenExpired.WithHint("The token has expired.")
	case c.NotBefore > s.now().Unix():
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token is not valid yet.")
	case c.IssuedAt > s.now().Add(maxClockSkew).Unix():
		return nil, fosite.ErrRequestUnauthorized.WithHint("The token was issued in the future.")
	}
	return &c, nil
}

// ErrMalformed marks why a token did not verify (its signature or
// claims), so that introspection tells it from a storage failure, which
// fosite wraps the same way.
var ErrMalformed = errors.New("oauth: malformed token")

// maxClockSkew is how far in the future an access token's iat may be: the
// clocks of idp's replicas differ by that much at most. idp sets no nbf, so
// any nbf in the future is refused.
const maxClockSkew = time.Minute

// A refresh token is fosite's HMAC format, key "." signature, whose 32-byte
// key is the chain's id (chainIDLen random bytes), the token's generation
// in the chain (4 bytes, big-endian) and 16 bytes of its own (random for a
// login's token, derived for a successor's). The HMAC authenticates the
// chain and generation, so a token names its chain and place in it: an old
// token finds the chain (and revokes it) without a row of its own. The
// signature, not the key, is what cannot be guessed; 96 random bits keep
// chain ids apart.
const (
	chainIDLen    = 12
	refreshKeyLen = chainIDLen + 4 + 16
)

// RefreshRef is what the storage knows a refresh token by: its chain, its
// generation, and its signature (stored only as a hash). Its String form is
// what RefreshTokenSignature returns and fosite passes to the storage.
type RefreshRef struct {
	Chain      string // base64url of the chain id
	Generation int64
	Signature  string
}

// String is chain "." generation "." signature: base64url and decimal never
// hold a dot.
func (r RefreshRef) String() string {
	return r.Chain + "." + strconv.FormatInt(r.Generation, 10) + "." + r.Signature
}

// ParseRefreshRef parses RefreshRef.String.
func ParseRefreshRef(s string) (RefreshRef, bool) {
	chain, rest, ok := strings.Cut(s, ".")
	if !ok {
		return RefreshRef{}, false
	}
	gen, sig, ok := strings.Cut(rest, ".")
	if !ok || chain == "" || sig == "" {
		return RefreshRef{}, false
	}
	g, err := strconv.ParseInt(gen, 10, 64)
	if err != nil || g < 0 || strconv.FormatInt(g, 10) != gen {
		return RefreshRef{}, false
	}
	return RefreshRef{Chain: chain, Generation: g, Signature: sig}, true
}

// RefreshTokenSignature is the reference of a refresh token
// (RefreshRef.String), which the storage looks it up by, or "" when the
// token is not one this service issued: it must be in its one canonical
// spelling and carry a valid HMAC. fosite's revocation handler checks
// nothing else before it revokes.
func (s *Strategy) RefreshTokenSignature(ctx context.Context, token string) string {
	ref, ok := s.ParseRefresh(ctx, token)
	if !ok {
		return ""
	}
	return ref.String()
}

// ParseRefreshToken is RefreshTokenSignature, and whether the token is
// valid: the refresh grant refuses what the revocation handler ignores.
func (s *Strategy) ParseRefreshToken(ctx context.Context, token string) (string, bool) {
	ref, ok := s.ParseRefresh(ctx, token)
	if !ok {
		return "", false
	}
	return ref.String(), true
}

// ParseRefresh is ParseRefreshToken as a RefreshRef.
func (s *Strategy) ParseRefresh(ctx context.Context, token string) (RefreshRef, bool) {
	key, sig, ok := strings.Cut(token, ".")
	if !ok || !canonicalBase64(key) || !canonicalBase64(sig) {
		return RefreshRef{}, false
	}
	raw, _ := base64.RawURLEncoding.DecodeString(key)
	if len(raw) != refreshKeyLen {
		return RefreshRef{}, false
	}
	gen := int64(binary.BigEndian.Uint32(raw[chainIDLen:]))
	if s.opaque.Enigma.Validate(ctx, token) != nil {
		return RefreshRef{}, false
	}
	return RefreshRef{Chain: base64.RawURLEncoding.EncodeToString(raw[:chainIDLen]), Generation: gen, Signature: sig}, true
}

// canonicalBase64 reports whether s is unpadded base64url of some bytes in
// the one spelling that encodes them. The lenient decoder accepts several
// spellings of one token (the unused low bits of the last character, line
// breaks), and a refresh token's key is not what its row is looked up by.
func canonicalBase64(s string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) > 0 && base64.RawURLEncoding.EncodeToString(b) == s
}

// GenerateRefreshToken starts a chain: a random chain id, generation 0, and
// a random part. Its signature is the token's RefreshRef.
func (s *Strategy) GenerateRefreshToken(context.Context, fosite.Requester) (string, string, error) {
	key := make([]byte, refreshKeyLen)
	rand.Read(key[:chainIDLen])
	rand.Read(key[chainIDLen+4:])
	token, sig := s.signRefreshKey(key)
	return token, RefreshRef{Chain: base64.RawURLEncoding.EncodeToString(key[:chainIDLen]), Signature: sig}.String(), nil
}

// ValidateRefreshToken is used by introspection after the storage lookup.
func (s *Strategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	if _, ok := s.ParseRefreshToken(ctx, token); !ok {
		return fosite.ErrTokenSignatureMismatch
	}
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && !s.now().Before(exp) {
		return fosite.ErrTokenExpired.WithHint("The refresh token has expired.")
	}
	return nil
}

func (s *Strategy) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return s.opaque.AuthorizeCodeSignature(ctx, token)
}

func (s *Strategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	return s.opaque.GenerateAuthorizeCode(ctx, r)
}

func (s *Strategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return s.opaque.ValidateAuthorizeCode(ctx, r, token)
}

// Successor is the refresh token that replaces the one p refers to, and
// its reference: the same chain, the next generation, and as its own part
// an HMAC of p's signature under a key derived from the first refresh token
// secret; its signature is fosite's HMAC of that key, as for any refresh
// token. It verifies like a random one, and every rotation of one token
// yields the same successor. The signature is the presented token's, not
// its hash: the database holds only hashes of signatures, so a copy of it
// with the secrets still yields no token.
func (s *Strategy) Successor(p RefreshRef) (token string, next RefreshRef) {
	chain, err := base64.RawURLEncoding.DecodeString(p.Chain)
	if err != nil || len(chain) != chainIDLen {
		// Only a RefreshRef that ParseRefresh returned is rotated.
		panic("token: successor of a malformed refresh reference")
	}
	key := make([]byte, 0, refreshKeyLen)
	key = append(key, chain...)
	// 2³² rotations, one a second, take 136 years: past them the
	// successor would not be the chain's and read as reuse.
	key = binary.BigEndian.AppendUint32(key, uint32(p.Generation+1))
	m := hmac.New(sha256.New, s.rotationKey)
	m.Write([]byte(p.Signature))
	key = m.Sum(key)[:refreshKeyLen]
	token, sig := s.signRefreshKey(key)
	return token, RefreshRef{Chain: p.Chain, Generation: p.Generation + 1, Signature: sig}
}

// signRefreshKey makes a refresh token of key: fosite's HMAC strategy's
// format and MAC (HMAC-SHA512/256 keyed with the first 32 bytes of the first
// secret), which its Validate accepts.
func (s *Strategy) signRefreshKey(key []byte) (token, signature string) {
	var secret [32]byte
	copy(secret[:], s.refreshSecret)
	m := hmac.New(sha512.New512_256, secret[:])
	m.Write(key)
	signature = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(key) + "." + signature, signature
}

// tokenAudience always holds the issuer (this service's own endpoints accept
// the token), then the audiences granted to the client.
func tokenAudience(issuer string, granted []string) Audience {
	aud := Audience{issuer}
	for _, a := range granted {
		if !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	return aud
}

// A refresh grant's access token is recorded on its chain's row (see
// fositestore.Store.Rotate), and its jti says so and names the chain, with
// a prefix that base64url never produces: the bearer check then reads that
// one row by its key instead of looking for the token elsewhere.
const chainPrefix = "r."

// ChainJTI is the jti of an access token issued by a refresh of chain.
func ChainJTI(chain string) string { return chainPrefix + chain + "." + RandomID() }

// ChainOf is the chain whose row records the access token with this jti, or
// "" when the token has a row of its own.
func ChainOf(jti string) string {
	rest, ok := strings.CutPrefix(jti, chainPrefix)
	if !ok {
		return ""
	}
	chain, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return chain
}

// RandomID is a fresh token id (jti): 128 random bits, base64url.
func RandomID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// UserID parses a user subject. Client ids never parse as one (they must
// start with a letter), so a numeric subject always names a user.
func UserID(subject string) (int64, bool) {
	id, err := strconv.ParseInt(subject, 10, 64)
	return id, err == nil && id > 0
}

// BearerToken extracts the token of an "Authorization: Bearer" header
// (RFC 6750 §2.1).
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
