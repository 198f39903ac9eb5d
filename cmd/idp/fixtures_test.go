package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/go-jose/go-jose/v4"

	"idp/account"
	"idp/fake"
	"idp/oauth"
	"idp/picture"
	"idp/storage"
)

const testBucket = fake.Bucket

// gcsOptions point the picture store at the emulator with the real storage
// client, signing URLs with a throwaway service-account key.
func gcsOptions(t *testing.T, srv *fakestorage.Server) []picture.Option {
	t.Helper()
	client := fake.GCSClient(t, srv)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return []picture.Option{
		picture.WithGCSClient(client),
		picture.WithEndpoint(srv.URL()),
		picture.WithSigningKey("pictures@test.iam.gserviceaccount.com", pemKey),
	}
}

// forgeWithKnownKid re-signs a real token's claims with a foreign key that
// claims the kid of a published key.
func forgeWithKnownKid(t *testing.T, s *testServer, real string) string {
	t.Helper()
	kid := accessTokenHeader(t, real).KeyID
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(real, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := signer.Sign(payload)
	out, _ := jws.CompactSerialize()
	return out
}

// newPasswordClient is a client for the password grant.
func newPasswordClient(id string, public bool) oauth.NewClient {
	return oauth.NewClient{ID: id, Public: public, GrantTypes: []string{"password", "refresh_token"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}}
}

func newUserFixture(username, gender string) account.NewUser {
	return account.NewUser{Username: username, Email: username + "@example.com", Password: testPassword,
		FirstName: "F", LastName: "L", Gender: storage.Gender(gender)}
}

// oauth2ClientCredentials fetches a client_credentials token.
type oauth2ClientCredentials struct {
	s          *testServer
	id, secret string
}

func (c *oauth2ClientCredentials) token(scope string) (string, error) {
	r := c.s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, c.id, c.secret)
	m := r.json(c.s.t)
	tok, _ := m["access_token"].(string)
	if tok == "" {
		return "", &url.Error{Op: "token", Err: errString(r.body)}
	}
	return tok, nil
}

type errString []byte

func (e errString) Error() string { return string(e) }
