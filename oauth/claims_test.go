package oauth

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"idp/storage"
)

// TestUserClaims: each scope adds exactly its claims (OIDC Core §5.4), an
// empty value included, and the ID token carries its own claims beside them.
func TestUserClaims(t *testing.T) {
	s := &Server{}
	u := &storage.User{ID: 42, Username: "ada", Email: "ada@example.com", FirstName: "Ada", LastName: "",
		Gender: storage.GenderFemale, UpdatedAt: time.Unix(1_800_000_000, 0)}
	profile := []string{"family_name", "gender", "given_name", "name", "preferred_username", "updated_at"}
	email := []string{"email", "email_verified"}
	tests := []struct {
		scopes []string
		want   []string
	}{
		{[]string{ScopeOpenID}, nil},
		{[]string{ScopeOpenID, ScopeProfile}, profile},
		{[]string{ScopeOpenID, ScopeEmail}, email},
		{[]string{ScopeOpenID, ScopeProfile, ScopeEmail}, append(slices.Clone(profile), email...)},
	}
	for _, tt := range tests {
		got := decodeClaims(t, s.userClaims(context.Background(), u, tt.scopes))
		want := append([]string{"sub"}, tt.want...)
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(want))) {
			t.Errorf("%v: claims %v, want %v", tt.scopes, keys, want)
		}
		if got["sub"] != "42" {
			t.Errorf("%v: sub %v", tt.scopes, got["sub"])
		}
	}
	all := decodeClaims(t, s.userClaims(context.Background(), u, []string{ScopeProfile, ScopeEmail}))
	if all["name"] != "Ada" || all["family_name"] != "" || all["email_verified"] != false || all["updated_at"] != 1_800_000_000.0 {
		t.Errorf("values: %v", all)
	}

	id := decodeClaims(t, idTokenClaims{Issuer: "https://idp.test", Audience: "mobile", IssuedAt: 1, Expiry: 2,
		userClaims: s.userClaims(context.Background(), u, []string{ScopeEmail})})
	if id["iss"] != "https://idp.test" || id["aud"] != "mobile" || id["email"] != "ada@example.com" || id["sub"] != "42" {
		t.Errorf("ID token claims: %v", id)
	}
	if _, ok := id["auth_time"]; ok {
		t.Errorf("ID token without an authentication time has auth_time: %v", id)
	}
}

func decodeClaims(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
