package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// PictureDeletion is a picture object that no row names any more and that
// storage still has to delete: written in the transaction that unlinks the
// picture (an account erasure), deleted once storage confirms, and retried
// with backoff until then, so that an outage of the store leaves nothing
// behind.
type PictureDeletion struct {
	ent.Schema
}

func (PictureDeletion) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").Positive().Immutable(),
		field.String("key").MaxLen(255).NotEmpty().Immutable().Comment("the picture key, as picture.NewKey made it"),
		field.Int("attempts").NonNegative().Default(0),
		field.Time("next_attempt_at").SchemaType(precise),
		field.Time("created_at").SchemaType(precise).Immutable(),
		field.String("last_error").MaxLen(255).Optional().Nillable().
			Comment("why the last attempt failed"),
	}
}

func (PictureDeletion) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("key").Unique(),
		index.Fields("next_attempt_at"),
	}
}
