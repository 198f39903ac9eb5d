package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// tokenFields are shared by the token tables. The id is the SHA-256 of the
// token's signature, so that a database dump holds nothing that can be
// presented as a token. request_id names the grant a token belongs to: one
// login and all its refreshes share it, and revocation works on it.
func tokenFields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(64).NotEmpty().Immutable(),
		field.String("request_id").MaxLen(64).NotEmpty().Immutable(),
		field.String("client_id").MaxLen(128).Immutable(),
		field.String("subject").MaxLen(128).Immutable(),
		field.Time("requested_at").SchemaType(precise).Immutable(),
		field.Time("expires_at").SchemaType(precise).Immutable(),
		field.Bytes("request").Immutable().Comment("the sanitised request and session as JSON"),
	}
}

// AccessToken records an issued access token so that introspection and this
// service's own endpoints can tell when its grant was revoked. Access tokens
// issued by a refresh grant have no row here: the refresh token issued with
// them records them (RefreshToken.access_token_id).
type AccessToken struct {
	ent.Schema
}

// Fields of the AccessToken.
func (AccessToken) Fields() []ent.Field { return tokenFields() }

// Indexes of the AccessToken.
func (AccessToken) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("request_id"),
		index.Fields("subject"),
		index.Fields("expires_at"),
	}
}

// RefreshToken records an issued refresh token. A used or revoked token keeps
// its row until it expires: presenting it again is how reuse is detected. A
// token is used once a row names it as parent_id, and revoked once inactive.
// Recording the rotation on the new row lets a refresh grant write one row
// and nothing else, without a transaction: the unique index on (request_id,
// parent_id) makes the second of two rotations of one token fail, as a
// parent and its successors share their grant.
type RefreshToken struct {
	ent.Schema
}

// Fields of the RefreshToken.
func (RefreshToken) Fields() []ent.Field {
	return append(tokenFields(),
		field.String("access_token_id").MaxLen(64).Optional(),
		field.String("parent_id").MaxLen(64).Optional().Nillable().Immutable().
			Comment("the row of the refresh token this one replaced"),
		field.Bool("active").Default(true),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
	)
}

// Indexes of the RefreshToken. A refresh grant records its new access
// token on the new refresh token's row (access_token_id) instead of a row of
// its own, so access tokens are also looked up there. One index serves the
// grant's rows (request_id) and rotation (parent_id, unique within the
// grant): every index costs each refresh a write, on SQLite pages of WAL.
func (RefreshToken) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("request_id", "parent_id").Unique(),
		index.Fields("subject"),
		index.Fields("expires_at"),
		index.Fields("access_token_id"),
	}
}
