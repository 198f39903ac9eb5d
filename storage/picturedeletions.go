package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"idp/ent"
	"idp/ent/picturedeletion"
)

// PictureDeletion is a picture object that no row names any more and that
// picture storage still has to delete, retried until it confirms.
type PictureDeletion struct {
	ID            int64
	Key           string
	Attempts      int
	NextAttemptAt time.Time
	CreatedAt     time.Time
	LastError     string // empty when no attempt has failed
}

func pictureDeletionOf(r *ent.PictureDeletion) *PictureDeletion {
	d := &PictureDeletion{
		ID:            r.ID,
		Key:           r.Key,
		Attempts:      r.Attempts,
		NextAttemptAt: r.NextAttemptAt,
		CreatedAt:     r.CreatedAt,
	}
	if r.LastError != nil {
		d.LastError = *r.LastError
	}
	return d
}

// QueuePictureDeletion records, on the transaction ctx carries, that key
// must be deleted, first at next. A key queued already stays queued once,
// as it was.
func (s *Store) QueuePictureDeletion(ctx context.Context, key string, next, now time.Time) error {
	err := s.client(ctx).PictureDeletion.Create().
		SetKey(key).SetNextAttemptAt(next).SetCreatedAt(now).
		OnConflictColumns(picturedeletion.FieldKey).DoNothing().
		Exec(ctx)
	// PostgreSQL answers a conflict with no row to return.
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return wrap(err)
}

// PictureDeletionByKey returns the queued deletion of key, or ErrNotFound.
func (s *Store) PictureDeletionByKey(ctx context.Context, key string) (*PictureDeletion, error) {
	r, err := s.client(ctx).PictureDeletion.Query().Where(picturedeletion.Key(key)).Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return pictureDeletionOf(r), nil
}

// DuePictureDeletions returns up to limit deletions due at now, the
// longest due first (the next_attempt_at index).
func (s *Store) DuePictureDeletions(ctx context.Context, now time.Time, limit int) ([]*PictureDeletion, error) {
	rows, err := s.client(ctx).PictureDeletion.Query().
		Where(picturedeletion.NextAttemptAtLTE(now)).
		Order(ent.Asc(picturedeletion.FieldNextAttemptAt)).
		Limit(limit).
		All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*PictureDeletion, len(rows))
	for i, r := range rows {
		out[i] = pictureDeletionOf(r)
	}
	return out, nil
}

// ClaimPictureDeletion moves the next attempt of deletion id from read (as
// the caller read it) to until, and reports whether it did: a conditional
// update, so of two workers one goes ahead. until must differ from read:
// MySQL counts the rows an update changed, not those it matched.
func (s *Store) ClaimPictureDeletion(ctx context.Context, id int64, read, until time.Time) (bool, error) {
	n, err := s.client(ctx).PictureDeletion.Update().
		Where(picturedeletion.ID(id), picturedeletion.NextAttemptAt(read)).
		SetNextAttemptAt(until).
		Save(ctx)
	return n == 1, wrap(err)
}

// ReschedulePictureDeletion records a failed attempt of deletion id: its
// attempt count, when to try next and why it failed. ErrNotFound when the
// deletion is gone.
func (s *Store) ReschedulePictureDeletion(ctx context.Context, id int64, attempts int, next time.Time, lastError string) error {
	_, err := s.client(ctx).PictureDeletion.UpdateOneID(id).
		SetAttempts(attempts).SetNextAttemptAt(next).SetLastError(lastError).
		Save(ctx)
	return wrap(err)
}

// DeletePictureDeletion forgets deletion id once storage has confirmed it.
// ErrNotFound when it is gone already.
func (s *Store) DeletePictureDeletion(ctx context.Context, id int64) error {
	return wrap(s.client(ctx).PictureDeletion.DeleteOneID(id).Exec(ctx))
}

// CountPictureDeletions counts the queued deletions.
func (s *Store) CountPictureDeletions(ctx context.Context) (int, error) {
	n, err := s.client(ctx).PictureDeletion.Query().Count(ctx)
	return n, wrap(err)
}
