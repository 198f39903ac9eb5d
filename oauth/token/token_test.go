package token

import "testing"

// TestTokenID: only a jti with RefreshRowPrefix says that the access
// token's record is on a refresh token's row; a random id never does.
func TestTokenID(t *testing.T) {
	if !OnRefreshRow(RefreshRowPrefix + RandomID()) {
		t.Error("a refresh grant's jti does not read as one")
	}
	for range 1000 {
		if OnRefreshRow(RandomID()) {
			t.Fatal("a random id reads as a refresh grant's")
		}
	}
}
