package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// OneTimeCode is a user's one live code for one purpose: resetting the
// password, verifying the email address, or confirming a change of it. The code itself is never
// stored: code_hash is an HMAC of it (with its user and purpose) under a
// server key, so a database dump does not let anyone reset a password or
// verify an address. A newer code of the same purpose replaces the row.
type OneTimeCode struct {
	ent.Schema
}

// Fields of the OneTimeCode.
func (OneTimeCode) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("user_id").Positive(),
		field.Enum("purpose").Values("reset", "verify", "email_change"),
		field.Bytes("code_hash").Sensitive().MaxLen(64),
		field.Int("attempts").Default(0).Comment("wrong tries so far; the code dies at 5"),
		field.Time("expires_at").SchemaType(precise),
		field.Time("created_at").SchemaType(precise).Default(time.Now),
		// The address an email_change code moves the account to once it is
		// used; empty for every other purpose.
		field.String("new_email").MaxLen(254).Optional().Nillable(),
	}
}

// Indexes of the OneTimeCode: one row per user and purpose (upserted), and
// the sweep of expired codes.
func (OneTimeCode) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("user_id", "purpose").Unique(),
		index.Fields("expires_at"),
	}
}

// LoginThrottle counts failed logins for one account, or for one unknown
// login name (so that unknown names lock out exactly like real accounts and
// the lock-out cannot be used to find which accounts exist): from all client
// addresses together, or from one.
type LoginThrottle struct {
	ent.Schema
}

// Fields of the LoginThrottle.
func (LoginThrottle) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(300).NotEmpty().Immutable().Comment("user:<id> or login:<name>, alone or followed by |<client address>"),
		field.Int("failures").Default(0),
		field.Time("locked_until").SchemaType(precise).Optional().Nillable(),
		field.Time("updated_at").SchemaType(precise).Default(time.Now).UpdateDefault(time.Now),
	}
}

// Indexes of the LoginThrottle.
func (LoginThrottle) Indexes() []ent.Index {
	return []ent.Index{index.Fields("updated_at")}
}

// RateLimitWindow counts requests of one key (limit, client) in one fixed
// window, shared by every server process.
type RateLimitWindow struct {
	ent.Schema
}

// Fields of the RateLimitWindow.
func (RateLimitWindow) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(300).NotEmpty().Immutable().Comment("<limit>|<key>|<window start>"),
		field.Int64("count").Default(0),
		field.Time("expires_at").SchemaType(precise),
	}
}

// Indexes of the RateLimitWindow.
func (RateLimitWindow) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}
