package storage

import (
	"context"
	"errors"
	"time"

	"idp/database"
	"idp/ent"
	"idp/ent/outboxmessage"
)

// OutboxState is where a message of the outbox is.
type OutboxState string

// The outbox states.
const (
	OutboxPending OutboxState = "pending"
	OutboxSent    OutboxState = "sent"
	OutboxFailed  OutboxState = "failed"
)

// OutboxMessage is an email in the outbox: waiting to be sent, or the
// record of one sent or given up on. A worker claims it by a conditional
// update of its lease; Attempts grows with every claim and is the fencing
// token a worker settles it with.
type OutboxMessage struct {
	ID            int64
	State         OutboxState
	Recipient     string
	UserID        int64 // the account it was written for; 0 for none
	Subject       string
	Text, HTML    string // blanked once sent
	CreatedAt     time.Time
	Attempts      int
	NextAttemptAt time.Time
	LeaseOwner    string // empty when not leased
	LeaseUntil    *time.Time
	SentAt        *time.Time
	FailedAt      *time.Time
	LastError     string // empty when no attempt has failed
}

func outboxMessageOf(m *ent.OutboxMessage) *OutboxMessage {
	out := &OutboxMessage{
		ID:            m.ID,
		State:         OutboxState(m.State),
		Recipient:     m.Recipient,
		Subject:       m.Subject,
		Text:          m.Text,
		HTML:          m.HTML,
		CreatedAt:     m.CreatedAt,
		Attempts:      m.Attempts,
		NextAttemptAt: m.NextAttemptAt,
		LeaseUntil:    m.LeaseUntil,
		SentAt:        m.SentAt,
		FailedAt:      m.FailedAt,
	}
	if m.UserID != nil {
		out.UserID = *m.UserID
	}
	if m.LeaseOwner != nil {
		out.LeaseOwner = *m.LeaseOwner
	}
	if m.LastError != nil {
		out.LastError = *m.LastError
	}
	return out
}

// CreateOutboxMessage stores a pending message (its recipient, user,
// subject, bodies, CreatedAt and NextAttemptAt) on the transaction ctx carries, so
// that it commits or rolls back with the change it reports, and returns its
// id. committed, when not nil, is called once the message is committed: when
// that transaction commits, or at once without one.
func (s *Store) CreateOutboxMessage(ctx context.Context, m *OutboxMessage, committed func()) (int64, error) {
	create := s.client(ctx).OutboxMessage.Create().
		SetRecipient(m.Recipient).
		SetSubject(m.Subject).
		SetText(m.Text).
		SetHTML(m.HTML).
		SetCreatedAt(m.CreatedAt).
		SetNextAttemptAt(m.NextAttemptAt)
	if m.UserID != 0 {
		create.SetUserID(m.UserID)
	}
	row, err := create.Save(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	if committed == nil {
		return row.ID, nil
	}
	if tx, ok := database.TxFrom(ctx); ok {
		tx.OnCommit(func(next ent.Committer) ent.Committer {
			return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
				err := next.Commit(ctx, tx)
				if err == nil {
					committed()
				}
				return err
			})
		})
	} else {
		committed()
	}
	return row.ID, nil
}

// DueOutboxMessages returns up to limit messages a worker may claim at now,
// the longest due first. It is a plain read, served by the (state,
// next_attempt_at) index: the claim is ClaimOutboxMessage.
func (s *Store) DueOutboxMessages(ctx context.Context, now time.Time, limit int) ([]*OutboxMessage, error) {
	rows, err := s.client(ctx).OutboxMessage.Query().
		Where(
			outboxmessage.StateEQ(outboxmessage.StatePending),
			outboxmessage.NextAttemptAtLTE(now),
			outboxmessage.Or(outboxmessage.LeaseUntilIsNil(), outboxmessage.LeaseUntilLTE(now)),
		).
		Order(outboxmessage.ByNextAttemptAt(), outboxmessage.ByID()).
		Limit(limit).
		All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*OutboxMessage, len(rows))
	for i, r := range rows {
		out[i] = outboxMessageOf(r)
	}
	return out, nil
}

// ClaimOutboxMessage leases message id to owner until leaseUntil and counts
// the attempt, provided the row is still as the worker read it: attempts
// unchanged, pending, due at now, unleased or its lease expired. It is a
// single conditional UPDATE, so of several workers claiming one message
// exactly one sees true. A lock conflict with another worker's claim is
// ErrRetryable.
func (s *Store) ClaimOutboxMessage(ctx context.Context, id int64, attempts int, owner string, now, leaseUntil time.Time) (bool, error) {
	n, err := s.client(ctx).OutboxMessage.Update().
		Where(
			outboxmessage.ID(id),
			outboxmessage.Attempts(attempts),
			outboxmessage.StateEQ(outboxmessage.StatePending),
			outboxmessage.NextAttemptAtLTE(now),
			outboxmessage.Or(outboxmessage.LeaseUntilIsNil(), outboxmessage.LeaseUntilLTE(now)),
		).
		SetLeaseOwner(owner).
		SetLeaseUntil(leaseUntil).
		AddAttempts(1).
		Save(ctx)
	return n == 1, wrap(err)
}

// MarkOutboxMessageSent records that message id was sent at now, releases
// its lease and blanks its bodies, which may hold a one-time code nobody
// needs any more. It does not check the lease (the message went out,
// whoever holds it now); it reports false when the message was no longer
// pending.
func (s *Store) MarkOutboxMessageSent(ctx context.Context, id int64, now time.Time) (bool, error) {
	n, err := s.client(ctx).OutboxMessage.Update().
		Where(outboxmessage.ID(id), outboxmessage.StateEQ(outboxmessage.StatePending)).
		SetState(outboxmessage.StateSent).
		SetSentAt(now).
		SetText("").
		SetHTML("").
		ClearLeaseOwner().
		ClearLeaseUntil().
		ClearLastError().
		Save(ctx)
	return n > 0, wrap(err)
}

// settleOutbox is the update of a message owner still holds: pending,
// leased by owner, with the attempt number of owner's claim.
func (s *Store) settleOutbox(ctx context.Context, id int64, owner string, attempt int) *ent.OutboxMessageUpdate {
	return s.client(ctx).OutboxMessage.Update().
		Where(
			outboxmessage.ID(id),
			outboxmessage.StateEQ(outboxmessage.StatePending),
			outboxmessage.LeaseOwner(owner),
			outboxmessage.Attempts(attempt),
		).
		ClearLeaseOwner().
		ClearLeaseUntil()
}

// RetryOutboxMessage releases owner's lease of message id and schedules the
// next attempt at next, if owner's claim (attempt) is still the latest; it
// reports false when another worker has taken the message over.
func (s *Store) RetryOutboxMessage(ctx context.Context, id int64, owner string, attempt int, next time.Time, lastError string) (bool, error) {
	n, err := s.settleOutbox(ctx, id, owner, attempt).
		SetNextAttemptAt(next).
		SetLastError(lastError).
		Save(ctx)
	return n > 0, wrap(err)
}

// FailOutboxMessage gives up on message id at now, if owner's claim
// (attempt) is still the latest; it reports false otherwise.
func (s *Store) FailOutboxMessage(ctx context.Context, id int64, owner string, attempt int, now time.Time, lastError string) (bool, error) {
	n, err := s.settleOutbox(ctx, id, owner, attempt).
		SetState(outboxmessage.StateFailed).
		SetFailedAt(now).
		SetLastError(lastError).
		Save(ctx)
	return n > 0, wrap(err)
}

// DeleteSentOutboxMessages deletes the sent messages created before before
// and returns how many. Failed messages are kept for inspection.
func (s *Store) DeleteSentOutboxMessages(ctx context.Context, before time.Time) (int, error) {
	sent := outboxmessage.And(outboxmessage.StateEQ(outboxmessage.StateSent), outboxmessage.CreatedAtLT(before))
	return deleteInBatches(ctx,
		func(ctx context.Context, limit int) ([]int64, error) {
			return s.client(ctx).OutboxMessage.Query().Where(sent).Limit(limit).IDs(ctx)
		},
		func(ctx context.Context, ids []int64) (int, error) {
			return s.client(ctx).OutboxMessage.Delete().Where(outboxmessage.IDIn(ids...), sent).Exec(ctx)
		})
}

// PendingOutboxMessages counts the pending messages and returns when the
// oldest of them was created (zero when none is pending), both through the
// (state, created_at) index.
func (s *Store) PendingOutboxMessages(ctx context.Context) (n int, oldest time.Time, err error) {
	pending := s.client(ctx).OutboxMessage.Query().Where(outboxmessage.StateEQ(outboxmessage.StatePending))
	n, err = pending.Clone().Count(ctx)
	if err != nil || n == 0 {
		return n, time.Time{}, wrap(err)
	}
	first, err := pending.Clone().
		Order(outboxmessage.ByCreatedAt(), outboxmessage.ByID()).
		Select(outboxmessage.FieldCreatedAt).
		First(ctx)
	switch err := wrap(err); {
	case errors.Is(err, ErrNotFound): // sent between the two queries
		return n, time.Time{}, nil
	case err != nil:
		return 0, time.Time{}, err
	}
	return n, first.CreatedAt, nil
}

// OutboxMessages returns every message of the outbox, by id: for
// inspection (and tests), not for the worker.
func (s *Store) OutboxMessages(ctx context.Context) ([]*OutboxMessage, error) {
	rows, err := s.client(ctx).OutboxMessage.Query().Order(outboxmessage.ByID()).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*OutboxMessage, len(rows))
	for i, r := range rows {
		out[i] = outboxMessageOf(r)
	}
	return out, nil
}
