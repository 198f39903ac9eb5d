package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Consent is what a user has allowed a client: the union of the scopes
// granted so far. version changes with every write, so that two concurrent
// grants each add to what the other wrote instead of overwriting it.
type Consent struct {
	ent.Schema
}

// Fields of the Consent.
func (Consent) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("user_id").Immutable(),
		field.String("client_id").MaxLen(128).NotEmpty().Immutable(),
		field.Strings("scopes").Optional(),
		field.Int64("version").Default(0),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
		field.Time("updated_at").SchemaType(precise).Default(time.Now),
	}
}

// Indexes of the Consent.
func (Consent) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id", "client_id").Unique()}
}
