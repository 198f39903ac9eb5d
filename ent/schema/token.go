package schema

import (
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
// issued by a refresh grant have no row here: their chain records the newest
// two (RefreshChain.access, prev_access).
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

// RefreshChain is a refresh-token chain: one login (one grant, one request
// id) and all its refreshes, in one row whatever the number of rotations.
// The row holds the newest token (hash, its generation) and, for the
// retry of a lost answer, the one it replaced (prev_hash, rotated_at).
// Tokens carry the chain's id and their generation, authenticated by
// their HMAC, so that an older token still finds its chain: presenting it
// is reuse, and revokes the chain. Rotation is one conditional UPDATE of
// this row, keyed by id, without a transaction.
type RefreshChain struct {
	ent.Schema
}

// Fields of the RefreshChain.
func (RefreshChain) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(32).NotEmpty().Immutable().
			Comment("random, carried by the chain's refresh tokens and by its refreshes' access tokens' jti"),
		field.String("request_id").MaxLen(64).NotEmpty().Immutable(),
		field.String("client_id").MaxLen(128).Immutable(),
		field.String("subject").MaxLen(128).Immutable(),
		field.Time("requested_at").SchemaType(precise).Immutable().Comment("when the login began"),
		field.Time("expires_at").SchemaType(precise).Comment("the newest token's expiry"),
		field.Bytes("request").Comment("the newest token's sanitised request and session as JSON"),
		field.String("hash").MaxLen(64).NotEmpty().Comment("SHA-256 of the newest token's signature"),
		field.Int64("generation").NonNegative().Comment("the newest token's: 0 for the login's, one more per rotation"),
		field.String("prev_hash").MaxLen(64).Optional().Nillable().Comment("SHA-256 of the signature of the token the newest replaced"),
		field.Time("rotated_at").SchemaType(precise).Comment("when the newest token was written"),
		field.String("access").MaxLen(64).Optional().Nillable().Comment("row id of the access token issued with the newest refresh"),
		field.String("prev_access").MaxLen(64).Optional().Nillable().Comment("row id of the access token issued with the previous one"),
		field.Bool("active").Default(true),
	}
}

// Indexes of the RefreshChain: every lookup by token is by id; the request
// id serves revocation, the subject a user's logins, the expiry the
// sweeper. Rotation changes only expires_at among indexed columns.
func (RefreshChain) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("request_id"),
		index.Fields("subject"),
		index.Fields("expires_at"),
	}
}
