package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuthorizeCode records an issued authorization code, keyed like the token
// rows by the SHA-256 of the code's signature. A redeemed code stays,
// inactive, until it expires: presenting it again is how fosite recognises
// a replayed code and revokes what its first redemption issued. Redemption
// flips active in one conditional update, so that of two concurrent
// redemptions exactly one wins (ory/fosite#778).
type AuthorizeCode struct {
	ent.Schema
}

// Fields of the AuthorizeCode.
func (AuthorizeCode) Fields() []ent.Field {
	return append(tokenFields(), field.Bool("active").Default(true))
}

// Indexes of the AuthorizeCode.
func (AuthorizeCode) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}

// PKCERequest records the PKCE challenge of an authorization request,
// keyed by the SHA-256 of its code's signature; fosite deletes it when the
// code is redeemed.
type PKCERequest struct {
	ent.Schema
}

// Fields of the PKCERequest.
func (PKCERequest) Fields() []ent.Field { return tokenFields() }

// Indexes of the PKCERequest.
func (PKCERequest) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}
