package keys

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

// compact assembles a JWS from a header and payload, signing the input with
// sign (nil for an empty signature).
func compact(t *testing.T, hdr map[string]any, payload string, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hs256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		mac := hmac.New(sha256.New, key)
		mac.Write(in)
		return mac.Sum(nil)
	}
}

func rs256(t *testing.T, k *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		sum := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func TestVerifyRefuses(t *testing.T) {
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		clock := newClock()
		m := loadedManager(t, storage.New(db), testOptions(clock))
		k := m.snap.Load().active
		kid := k.kid
		payload := `{"sub":"alice"}`

		pubDER, _ := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		jwks, _ := m.JWKS()

		joseSign := func(alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions) string {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := s.Sign([]byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		good := compact(t, map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}, payload, rs256(t, k.priv))
		tampered := good[:strings.Index(good, ".")+1] +
			base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`)) +
			good[strings.LastIndex(good, "."):]

		tests := []struct {
			name  string
			token string
		}{
			{"alg none", compact(t, map[string]any{"alg": "none", "kid": kid}, payload, nil)},
			{"alg none, no signature part", strings.TrimSuffix(compact(t, map[string]any{"alg": "none", "kid": kid}, payload, nil), ".")},
			{"HS256 keyed with the public key PEM", compact(t, map[string]any{"alg": "HS256", "kid": kid}, payload, hs256(pubPEM))},
			{"HS256 keyed with the public key DER", compact(t, map[string]any{"alg": "HS256", "kid": kid}, payload, hs256(pubDER))},
			{"HS256 keyed with the JWKS", compact(t, map[string]any{"alg": "HS256", "kid": kid}, payload, hs256(jwks))},
			{"HS256 keyed with the modulus", compact(t, map[string]any{"alg": "HS256", "kid": kid}, payload, hs256(k.priv.N.Bytes()))},
			{"RS512 with the right key", joseSign(jose.RS512, jose.JSONWebKey{Key: k.priv, KeyID: kid}, nil)},
			{"PS256 with the right key", joseSign(jose.PS256, jose.JSONWebKey{Key: k.priv, KeyID: kid}, nil)},
			{"foreign key carrying a known kid", compact(t, map[string]any{"alg": "RS256", "kid": kid}, payload, rs256(t, foreign))},
			{"foreign key embedded as jwk header", joseSign(jose.RS256, foreign, &jose.SignerOptions{EmbedJWK: true})},
			{"own key embedded as jwk header, no kid", joseSign(jose.RS256, k.priv, &jose.SignerOptions{EmbedJWK: true})},
			{"missing kid", joseSign(jose.RS256, k.priv, nil)},
			{"empty kid", compact(t, map[string]any{"alg": "RS256", "kid": ""}, payload, rs256(t, k.priv))},
			{"unknown kid", compact(t, map[string]any{"alg": "RS256", "kid": "no-such-key"}, payload, rs256(t, k.priv))},
			{"tampered payload", tampered},
			{"non-string typ", compact(t, map[string]any{"alg": "RS256", "kid": kid, "typ": 1}, payload, rs256(t, k.priv))},
			{"unknown crit", compact(t, map[string]any{"alg": "RS256", "kid": kid, "crit": []string{"exp"}, "exp": 1}, payload, rs256(t, k.priv))},
			{"JSON serialization", `{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"AA"}`},
			{"empty", ""},
			{"garbage", "not a token"},
			{"two parts", "a.b"},
			{"four parts", "a.b.c.d"},
			{"bad base64", "!!!.???.***"},
			{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".e30.AA"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v, err := m.Verify(tt.token)
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", v, err)
				}
			})
		}

		// The control: the same construction with the right key and alg
		// passes, so the refusals above are about what each case changed.
		v, err := m.Verify(good)
		if err != nil || string(v.Payload) != payload || v.Type != "JWT" || v.KeyID != kid {
			t.Fatalf("control token: %+v, %v", v, err)
		}
	})
}

// TestRotateImmediate: an emergency rotation signs with the new key at once,
// and a process that has not reloaded still verifies it, because an unknown
// kid triggers one reload (at most one per second).
func TestRotateImmediate(t *testing.T) {
	eachPair(t, func(t *testing.T, a, b *database.DB) {
		ctx := t.Context()
		clock := newClock()
		m1 := loadedManager(t, storage.New(a), testOptions(clock))
		m2 := loadedManager(t, storage.New(b), testOptions(clock))
		kid1 := activeKID(t, m1)
		old, _ := m1.Sign([]byte(`{"old":true}`), "")

		ki, err := m1.Rotate(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if ki.State != StateActive || ki.ID == kid1 || ki.ActivatedAt == nil || !ki.ActivatedAt.Equal(t0) || !ki.ActivatesAt.Equal(t0) {
			t.Fatalf("Rotate(now) = %+v, want a new key active since now", ki)
		}
		checkTable(t, storage.New(a))
		if got := activeKID(t, m1); got != ki.ID {
			t.Fatalf("after Rotate(now) m1 signs with %s, want %s", got, ki.ID)
		}
		tok, _ := m1.Sign([]byte(`{"new":true}`), "")

		if m2.snap.Load().keys[ki.ID] != nil {
			t.Fatal("m2 already knows the new key; the test would prove nothing")
		}
		v, err := m2.Verify(tok)
		if err != nil || v.KeyID != ki.ID {
			t.Fatalf("m2.Verify(new kid) = %+v, %v; want the unknown-kid reload to find it", v, err)
		}
		if got := activeKID(t, m2); got != ki.ID {
			t.Errorf("after the reload m2 signs with %s, want %s", got, ki.ID)
		}
		if _, err := m2.Verify(old); err != nil {
			t.Errorf("token of the retired key: %v", err)
		}

		// Within the same second a second unknown kid does not reload...
		ki3, err := m1.Rotate(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		tok3, _ := m1.Sign([]byte(`{}`), "")
		if _, err := m2.Verify(tok3); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("second unknown kid within a second: err = %v, want a refusal (rate limit)", err)
		}
		// ...a second later it does.
		clock.Advance(time.Second)
		if v, err := m2.Verify(tok3); err != nil || v.KeyID != ki3.ID {
			t.Fatalf("unknown kid a second later: %+v, %v", v, err)
		}
	})
}

// TestVerifyRefusesOtherSpellings: a token with a line break in a segment,
// or with other unused trailing bits in its signature, decodes to the same
// bytes but is not the token that was issued.
func TestVerifyRefusesOtherSpellings(t *testing.T) {
	db := databasetest.Open(t, databasetest.SQLiteURL(t))
	m := loadedManager(t, storage.New(db), testOptions(newClock()))
	tok, err := m.Sign([]byte(`{"sub":"1"}`), "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(tok); err != nil {
		t.Fatal(err)
	}
	last := tok[len(tok)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, last)
	// 2048-bit signatures are 256 bytes: the last character carries 4
	// unused bits, so flipping the lowest one spells the same bytes.
	sibling := tok[:len(tok)-1] + string(alphabet[i^1])
	withBreak := strings.Replace(tok, ".", ".\n", 1)
	for name, v := range map[string]string{"trailing bits": sibling, "line break": withBreak} {
		if _, err := m.Verify(v); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
}

// TestSignAsGoJose: Sign's tokens are byte for byte the ones go-jose's
// signer gives with the same key, kid and typ (RSASSA-PKCS1-v1_5 is
// deterministic), for every typ the token service uses and none, and Verify
// accepts them with their typ.
func TestSignAsGoJose(t *testing.T) {
	m := loadedManager(t, storage.New(databasetest.Open(t, databasetest.SQLiteURL(t))), testOptions(newClock()))
	k := m.snap.Load().active
	payload := []byte(`{"iss":"http://idp.test","sub":"7","aud":"mobile","exp":1893459600,"name":"Ada <&> \u00e9"}`)
	for _, typ := range []string{"at+jwt", "JWT", ""} {
		opts := &jose.SignerOptions{}
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256,
			Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: Algorithm, Use: "sig"}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the header built, then cached
			got, err := m.Sign(payload, typ)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("typ %q:\n got %s\nwant %s", typ, got, want)
			}
			v, err := m.Verify(got)
			if err != nil || string(v.Payload) != string(payload) || v.Type != typ || v.KeyID != k.kid {
				t.Fatalf("typ %q: Verify = %+v, %v", typ, v, err)
			}
		}
	}
}
