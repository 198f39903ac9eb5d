package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// PasswordResetCode is the one live reset code of a user. The code itself is
// never stored: code_hash is an HMAC of it under a server key, so a database
// dump does not let anyone reset a password. A newer code replaces the row.
type PasswordResetCode struct {
	ent.Schema
}

// Fields of the PasswordResetCode.
func (PasswordResetCode) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("user_id").Positive().Unique(),
		field.Bytes("code_hash").Sensitive().MaxLen(64),
		field.Int("attempts").Default(0).Comment("wrong tries so far; the code dies at 5"),
		field.Time("expires_at").SchemaType(precise),
		field.Time("created_at").SchemaType(precise).Default(time.Now),
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
