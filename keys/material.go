package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"idp/storage"
)

// newKeyMaterial is a freshly generated key, ready to insert.
type newKeyMaterial struct {
	kid       string
	sealed    []byte // AES-GCM sealed PKCS#8 DER
	publicJWK []byte
}

// generate makes a new RSA key of the configured size and seals it.
func (m *Manager) generate() (newKeyMaterial, error) {
	priv, err := rsa.GenerateKey(rand.Reader, m.opts.Size)
	if err != nil {
		return newKeyMaterial{}, fmt.Errorf("keys: generate RSA key: %w", err)
	}
	return m.material(priv)
}

// material derives the row contents for priv.
func (m *Manager) material(priv *rsa.PrivateKey) (newKeyMaterial, error) {
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return newKeyMaterial{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return newKeyMaterial{}, fmt.Errorf("keys: encode private key: %w", err)
	}
	sealed := m.aead.seal(der, kid)
	clear(der)
	pub, err := json.Marshal(publicJWK(&priv.PublicKey, kid))
	if err != nil {
		return newKeyMaterial{}, fmt.Errorf("keys: encode public key: %w", err)
	}
	return newKeyMaterial{kid: kid, sealed: sealed, publicJWK: pub}, nil
}

// thumbprint is the kid of a key: its RFC 7638 JWK thumbprint (SHA-256,
// base64url). A random kid would do for lookup, but the thumbprint binds the
// id to the key: Load checks that a row's id, its public JWK and its
// decrypted private key all belong together, so a hand-edited row or a
// restore that mixes rows is caught instead of publishing a key that does
// not verify what it signs. Anyone holding the public key can recompute it.
func thumbprint(pub *rsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// publicJWK is the published form of a key: kty, kid, alg, use, n, e.
func publicJWK(pub *rsa.PublicKey, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: Algorithm, Use: "sig"}
}

// parsePublicJWK decodes the public_jwk column, refusing anything but a
// public RSA key.
func parsePublicJWK(b []byte) (*rsa.PublicKey, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(b, &jwk); err != nil {
		return nil, fmt.Errorf("decode public JWK: %w", err)
	}
	pub, ok := jwk.Key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public JWK holds a %T, want an RSA public key", jwk.Key)
	}
	return pub, nil
}

// openRow decrypts a row and checks that its parts match.
func (m *Manager) openRow(r *storage.SigningKey) (*loadedKey, error) {
	if r.Algorithm != Algorithm {
		return nil, fmt.Errorf("keys: signing key %s: algorithm %q is not supported (want %s)", r.ID, r.Algorithm, Algorithm)
	}
	pub, err := parsePublicJWK(r.PublicJWK)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %s: %w", r.ID, err)
	}
	if kid, err := thumbprint(pub); err != nil {
		return nil, err
	} else if kid != r.ID {
		return nil, fmt.Errorf("keys: signing key %s: public key does not match its id", r.ID)
	}
	der, err := m.aead.open(r.PrivateKey, r.ID)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		// The GCM tag matched, so the KEK is right; the plaintext is not a
		// key. The parser's message names no key material.
		return nil, fmt.Errorf("keys: signing key %s: decode private key: %w", r.ID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keys: signing key %s: private key is a %T, want RSA", r.ID, parsed)
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, errors.New("keys: signing key " + r.ID + ": private key does not match the public key")
	}
	return &loadedKey{kid: r.ID, priv: priv, jwk: publicJWK(pub, r.ID)}, nil
}
