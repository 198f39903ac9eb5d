package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// BrowserSession is a signed-in browser: the cookie names it, and every
// replica finds it here. The cookie's token is never stored, only its
// SHA-256 (token_hash), so a database dump signs no one in; the id is a
// separate public random name (the OIDC sid) that can be shown and logged.
type BrowserSession struct {
	ent.Schema
}

// Fields of the BrowserSession.
func (BrowserSession) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").MaxLen(32).NotEmpty().Immutable(),
		field.String("token_hash").MaxLen(64).NotEmpty().Unique().Immutable().Sensitive(),
		field.Int64("user_id").Immutable(),
		field.Time("auth_time").SchemaType(precise),
		field.Strings("methods").Optional().Comment("authentication methods (amr): pwd, hwk"),
		field.String("user_agent").MaxLen(255).Default(""),
		field.Bool("remember").Default(false),
		field.Time("created_at").SchemaType(precise).Immutable(),
		field.Time("last_seen_at").SchemaType(precise),
		field.Time("expires_at").SchemaType(precise).Immutable().Comment("absolute end; the idle end is last_seen_at plus the idle lifetime"),
	}
}

// Indexes of the BrowserSession. last_seen_at serves the sweep of idle
// sessions; it is written at most once a minute per session.
func (BrowserSession) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("user_id"),
		index.Fields("expires_at"),
		index.Fields("last_seen_at"),
	}
}
