package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// SigningKey is an RSA key that signs tokens. Its private part is encrypted
// with the key-encryption key; the public part is kept in the clear as a JWK.
type SigningKey struct {
	ent.Schema
}

// Fields of the SigningKey.
func (SigningKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(64).NotEmpty().Immutable().Comment("the kid"),
		field.Enum("state").Values("next", "active", "retired"),
		// slot is "next" or "active" for the keys in those states and NULL
		// for retired keys. Its unique index lets the database, not a lock,
		// guarantee at most one next and one active key when several
		// processes rotate at once.
		field.String("slot").Optional().Nillable().MaxLen(8),
		field.String("algorithm").MaxLen(16).Default("RS256"),
		field.Bytes("private_key").Sensitive().Immutable().Comment("AES-256-GCM sealed PKCS#8 DER"),
		field.Bytes("public_jwk").Immutable(),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
		field.Time("activates_at").SchemaType(precise).Comment("when a next key starts signing"),
		field.Time("activated_at").SchemaType(precise).Optional().Nillable(),
		field.Time("retired_at").SchemaType(precise).Optional().Nillable(),
	}
}

// Indexes of the SigningKey.
func (SigningKey) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("slot").Unique(),
	}
}
