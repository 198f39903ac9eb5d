package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// OAuthClient is a registered OAuth 2.0 client.
type OAuthClient struct {
	ent.Schema
}

// Fields of the OAuthClient. A public client has no secret; a confidential
// client's secret is random and long, so a SHA-256 digest is enough to keep it
// unusable from a database dump (a slow hash protects guessable secrets only).
func (OAuthClient) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(128).NotEmpty().Immutable(),
		field.Bytes("secret_hash").Optional().Nillable().Sensitive().MaxLen(64),
		field.Bool("public").Default(false),
		field.Strings("grant_types"),
		field.Strings("scopes"),
		field.Strings("audience").Optional(),
		field.Strings("redirect_uris").Optional(),
		// first_party clients are this service's own apps: the browser
		// sign-in never asks their users for consent.
		field.Bool("first_party").Default(false),
		// Where RP-initiated logout may send the browser back to.
		field.Strings("post_logout_redirect_uris").Optional(),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
	}
}
