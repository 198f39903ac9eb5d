package storage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

// TestClientRows: a client reads back as registered, by exactly its id
// (whatever the collation: "Mobile" is not "mobile"); a taken id is a
// conflict; the list is by id; an update changes what it may, never the
// secret, audience or publicness; only a confidential client's secret is
// replaced; a deleted client is gone. On every engine.
func TestClientRows(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		web := Client{ID: "web", SecretHash: bytes.Repeat([]byte{1}, 32), GrantTypes: []string{"authorization_code"},
			Scopes: []string{"openid"}, Audience: []string{"https://api.example"}, RedirectURIs: []string{"https://web.example/cb"},
			PostLogoutRedirectURIs: []string{"https://web.example/bye"}}
		mobile := Client{ID: "mobile", Public: true, FirstParty: true, GrantTypes: []string{"password", "refresh_token"},
			Scopes: []string{"openid", "offline_access"}, Audience: []string{}, RedirectURIs: []string{}, PostLogoutRedirectURIs: []string{}}
		for _, c := range []Client{web, mobile} {
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateClient(ctx, mobile); !errors.Is(err, ErrConflict) {
			t.Errorf("a taken id: %v, want ErrConflict", err)
		}

		got, err := s.ClientByID(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "web" || got.Public || !bytes.Equal(got.SecretHash, web.SecretHash) ||
			!slices.Equal(got.GrantTypes, web.GrantTypes) || !slices.Equal(got.Scopes, web.Scopes) ||
			!slices.Equal(got.Audience, web.Audience) || !slices.Equal(got.RedirectURIs, web.RedirectURIs) ||
			!slices.Equal(got.PostLogoutRedirectURIs, web.PostLogoutRedirectURIs) || got.FirstParty || got.CreatedAt.IsZero() {
			t.Errorf("web: %+v", got)
		}
		if got, err := s.ClientByID(ctx, "mobile"); err != nil || !got.Public || !got.FirstParty || got.SecretHash != nil {
			t.Errorf("mobile: %+v, %v", got, err)
		}
		for _, id := range []string{"Mobile", "nobody"} {
			if _, err := s.ClientByID(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", id, err)
			}
		}

		list, err := s.Clients(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "mobile" || list[1].ID != "web" {
			t.Errorf("Clients = %+v, %v", list, err)
		}

		up := Client{ID: "web", Public: true, SecretHash: []byte("other"), Audience: []string{"https://other"},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
			RedirectURIs: []string{"https://web.example/cb2"}, FirstParty: true, PostLogoutRedirectURIs: []string{}}
		if err := s.UpdateClient(ctx, up); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ClientByID(ctx, "web")
		if !slices.Equal(got.GrantTypes, up.GrantTypes) || !slices.Equal(got.Scopes, up.Scopes) ||
			!slices.Equal(got.RedirectURIs, up.RedirectURIs) || !got.FirstParty || len(got.PostLogoutRedirectURIs) != 0 ||
			got.Public || !bytes.Equal(got.SecretHash, web.SecretHash) || !slices.Equal(got.Audience, web.Audience) {
			t.Errorf("after the update: %+v", got)
		}
		if err := s.UpdateClient(ctx, Client{ID: "nobody"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("updating an unknown client: %v, want ErrNotFound", err)
		}

		if ok, err := s.SetClientSecret(ctx, "web", []byte("new")); !ok || err != nil {
			t.Errorf("SetClientSecret(web) = %v, %v", ok, err)
		}
		if got, _ := s.ClientByID(ctx, "web"); string(got.SecretHash) != "new" {
			t.Errorf("secret after SetClientSecret: %q", got.SecretHash)
		}
		if ok, err := s.SetClientSecret(ctx, "mobile", []byte("new")); ok || err != nil {
			t.Errorf("SetClientSecret of a public client = %v, %v; want false", ok, err)
		}
		if got, _ := s.ClientByID(ctx, "mobile"); got.SecretHash != nil {
			t.Error("a public client got a secret")
		}

		if err := s.DeleteClient(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClientByID(ctx, "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after the delete: %v, want ErrNotFound", err)
		}
		if err := s.DeleteClient(ctx, "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting again: %v, want ErrNotFound", err)
		}
	})
}
