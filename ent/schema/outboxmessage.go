package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// OutboxMessage is an email waiting to be sent, or the record of one that was
// sent or given up on. It is written in the same transaction as the change it
// reports (a reset code, a password change), so the mail goes out if and only
// if that change commits; a worker (package mail) delivers it afterwards.
//
// A worker claims a message by a conditional UPDATE of lease_owner and
// lease_until, so several processes can deliver from one table without
// SELECT … FOR UPDATE. attempts grows with every claim and doubles as a
// fencing token: a worker settles a message only while attempts still has
// the value its claim gave it.
type OutboxMessage struct {
	ent.Schema
}

// Fields of the OutboxMessage. The bodies (and the subject) may carry one-time
// codes: they are Sensitive so that ent never prints them, and the worker
// blanks text and html once the message is sent.
func (OutboxMessage) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id").Positive().Immutable(),
		field.Enum("state").Values("pending", "sent", "failed").Default("pending"),
		field.String("recipient").MaxLen(320).NotEmpty().Immutable(),
		field.Int64("user_id").Optional().Nillable().Immutable().
			Comment("the account the message was written for, so that its erasure takes the message; empty for none (the notice of an erasure)"),
		field.String("subject").MaxLen(998).Sensitive(),
		field.Text("text").Sensitive(),
		field.Text("html").Sensitive(),
		field.Time("created_at").SchemaType(precise).Immutable(),
		field.Int("attempts").NonNegative().Default(0),
		field.Time("next_attempt_at").SchemaType(precise),
		field.String("lease_owner").MaxLen(64).Optional().Nillable(),
		field.Time("lease_until").SchemaType(precise).Optional().Nillable(),
		field.Time("sent_at").SchemaType(precise).Optional().Nillable(),
		field.Time("failed_at").SchemaType(precise).Optional().Nillable(),
		field.String("last_error").MaxLen(255).Optional().Nillable().
			Comment("why the last attempt failed: a status code or an error, never the body"),
	}
}

// Indexes of the OutboxMessage.
func (OutboxMessage) Indexes() []ent.Index {
	return []ent.Index{
		// The claim query: state = 'pending' AND next_attempt_at <= now,
		// oldest first; the lease condition filters the few rows found.
		index.Fields("state", "next_attempt_at"),
		// The oldest pending message (for metrics) and the clean-up of
		// sent messages older than a week.
		index.Fields("state", "created_at"),
		// An erasure deletes the messages of its account.
		index.Fields("user_id"),
	}
}
