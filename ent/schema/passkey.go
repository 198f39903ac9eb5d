package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Passkey is a user's WebAuthn credential (a discoverable credential with
// user verification). The credential id can be up to 1023 bytes, too long
// for a unique index on MySQL, so the unique key is its SHA-256
// (credential_hash). Nothing here is secret: the public key is public.
type Passkey struct {
	ent.Schema
}

// Fields of the Passkey.
func (Passkey) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(32).NotEmpty().Immutable(),
		field.Int64("user_id").Immutable(),
		field.Bytes("credential_id").MaxLen(1023).NotEmpty().Immutable(),
		field.String("credential_hash").MaxLen(64).NotEmpty().Unique().Immutable().Comment("hex SHA-256 of credential_id"),
		field.Bytes("public_key").MaxLen(4096).NotEmpty().Immutable().Comment("COSE key"),
		field.String("attestation_type").MaxLen(32).Default(""),
		field.Bytes("aaguid").MaxLen(16).Optional(),
		field.Uint32("sign_count").Default(0),
		field.Bool("user_present").Default(false),
		field.Bool("user_verified").Default(false),
		field.Bool("backup_eligible").Default(false),
		field.Bool("backup_state").Default(false),
		field.Strings("transports").Optional(),
		field.String("name").MaxLen(64).Default(""),
		field.Time("created_at").SchemaType(precise).Immutable(),
		field.Time("last_used_at").SchemaType(precise).Optional().Nillable(),
	}
}

// Indexes of the Passkey.
func (Passkey) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id")}
}

// WebAuthnChallenge is one ceremony under way: the library's session data
// (the challenge and what it expects) kept on the server, so that a
// challenge is single use (deleted when consumed) and lives 5 minutes.
// user_id binds a registration to the user who asked for it; a login
// (discoverable) names no user until the assertion does.
type WebAuthnChallenge struct {
	ent.Schema
}

// Fields of the WebAuthnChallenge.
func (WebAuthnChallenge) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(32).NotEmpty().Immutable(),
		field.Enum("ceremony").Values("registration", "login").Immutable(),
		field.Int64("user_id").Optional().Nillable().Immutable(),
		field.Bytes("session_data").MaxLen(65535).Immutable(),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
		field.Time("expires_at").SchemaType(precise).Immutable(),
	}
}

// Indexes of the WebAuthnChallenge.
func (WebAuthnChallenge) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id"), index.Fields("expires_at")}
}
