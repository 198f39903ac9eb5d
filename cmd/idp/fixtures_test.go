package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/go-jose/go-jose/v4"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"idp/account"
	"idp/ent/user"
	"idp/oauth"
	"idp/picture"
)

const testBucket = "idp-pictures"

// newFakeGCS runs fake-gcs-server in-process with the picture bucket.
func newFakeGCS(t *testing.T) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	return srv
}

// gcsOptions point the picture store at the emulator with the real storage
// client, signing URLs with a throwaway service-account key.
func gcsOptions(t *testing.T, srv *fakestorage.Server) []picture.Option {
	t.Helper()
	client, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return []picture.Option{
		picture.WithGCSClient(client),
		picture.WithEndpoint(srv.URL()),
		picture.WithSigningKey("pictures@test.iam.gserviceaccount.com", pemKey),
	}
}

func countObjects(t *testing.T, srv *fakestorage.Server) int {
	t.Helper()
	client := srv.Client()
	it := client.Bucket(testBucket).Objects(context.Background(), nil)
	n := 0
	for {
		_, err := it.Next()
		if err == iterator.Done {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
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
		FirstName: "F", LastName: "L", Gender: user.Gender(gender)}
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
