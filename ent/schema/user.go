package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// User is an account that can log in with a password.
type User struct {
	ent.Schema
}

// Fields of the User. Username and email are stored lower-case so that a
// plain unique index makes them unique regardless of letter case, on every
// database and collation.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").Positive().Immutable(),
		field.String("username").MaxLen(32).NotEmpty(),
		field.String("email").MaxLen(254).NotEmpty(),
		// Set once the owner proved the address with a mailed code (or a
		// password reset by one); a relying party may trust the email claim
		// only then.
		field.Bool("email_verified").Default(false),
		field.String("password_hash").Sensitive().MaxLen(255),
		field.String("first_name").MaxLen(400),
		field.String("last_name").MaxLen(400),
		field.Enum("gender").Values("female", "male", "unspecified").Default("unspecified"),
		field.String("picture_key").Optional().Nillable().MaxLen(255),
		field.Time("created_at").SchemaType(precise).Default(time.Now).Immutable(),
		field.Time("updated_at").SchemaType(precise).Default(time.Now).UpdateDefault(time.Now),
		field.Time("password_changed_at").SchemaType(precise).Default(time.Now),
	}
}

// Indexes of the User.
func (User) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("username").Unique(),
		index.Fields("email").Unique(),
		// Stats count users by gender in one aggregate query.
		index.Fields("gender"),
	}
}
