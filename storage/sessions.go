package storage

import (
	"context"
	"fmt"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"idp/ent"
	"idp/ent/browsersession"
	"idp/ent/predicate"
)

// BrowserSession is a signed-in browser's row. Only the hash of the
// cookie's token is kept, never the token.
type BrowserSession struct {
	// ID is the session's public name (the OIDC sid).
	ID        string
	TokenHash string
	UserID    int64
	AuthTime  time.Time
	// Methods are the amr values of the sign-in ("pwd", "hwk").
	Methods    []string
	UserAgent  string
	Remember   bool
	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute end; the idle end is LastSeenAt plus the
	// idle lifetime, which the caller knows.
	ExpiresAt time.Time
}

func browserSessionOf(row *ent.BrowserSession) BrowserSession {
	return BrowserSession{
		ID:         row.ID,
		TokenHash:  row.TokenHash,
		UserID:     row.UserID,
		AuthTime:   row.AuthTime,
		Methods:    row.Methods,
		UserAgent:  row.UserAgent,
		Remember:   row.Remember,
		CreatedAt:  row.CreatedAt,
		LastSeenAt: row.LastSeenAt,
		ExpiresAt:  row.ExpiresAt,
	}
}

// CreateSession stores a session, only while its user exists: the insert
// runs after a shared lock on the user's row (holdUser), so that a
// sign-in racing the account's erasure leaves no session behind. A user
// that is gone is ErrNotFound.
func (s *Store) CreateSession(ctx context.Context, bs BrowserSession) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.holdUser(ctx, bs.UserID); err != nil {
			return err
		}
		return wrap(s.client(ctx).BrowserSession.Create().
			SetID(bs.ID).
			SetTokenHash(bs.TokenHash).
			SetUserID(bs.UserID).
			SetAuthTime(bs.AuthTime).
			SetMethods(bs.Methods).
			SetUserAgent(bs.UserAgent).
			SetRemember(bs.Remember).
			SetCreatedAt(bs.CreatedAt).
			SetLastSeenAt(bs.LastSeenAt).
			SetExpiresAt(bs.ExpiresAt).
			Exec(ctx))
	})
}

// SessionByTokenHash is the session whose token hashes to tokenHash, by
// its unique index: the one read of every signed-in page. It does not
// judge expiry; ErrNotFound when there is no such row.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash string) (*BrowserSession, error) {
	row, err := s.client(ctx).BrowserSession.Query().Where(browsersession.TokenHash(tokenHash)).Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	bs := browserSessionOf(row)
	return &bs, nil
}

// RecordSessionSeen sets the session's LastSeenAt to at, provided the
// stored one is at or before staleBy: conditional, so that concurrent
// lookups of one session mostly leave the write to the first. A session
// that is gone or seen since is no error.
func (s *Store) RecordSessionSeen(ctx context.Context, id string, at, staleBy time.Time) error {
	_, err := s.client(ctx).BrowserSession.Update().
		Where(browsersession.ID(id), browsersession.LastSeenAtLTE(staleBy)).
		SetLastSeenAt(at).
		Save(ctx)
	return wrap(err)
}

// DeleteSession removes the session id; one that is gone is no error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.client(ctx).BrowserSession.Delete().Where(browsersession.ID(id)).Exec(ctx)
	return wrap(err)
}

// DeleteUserSession removes the session id provided it is userID's;
// ErrNotFound when there was none such to remove.
func (s *Store) DeleteUserSession(ctx context.Context, userID int64, id string) error {
	n, err := s.client(ctx).BrowserSession.Delete().
		Where(browsersession.ID(id), browsersession.UserID(userID)).
		Exec(ctx)
	if err != nil {
		return wrap(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: session of user %d", ErrNotFound, userID)
	}
	return nil
}

// DeleteUserSessions removes every session of userID but keepID (an
// empty keepID keeps none).
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64, keepID string) error {
	q := s.client(ctx).BrowserSession.Delete().Where(browsersession.UserID(userID))
	if keepID != "" {
		q.Where(browsersession.IDNEQ(keepID))
	}
	_, err := q.Exec(ctx)
	return wrap(err)
}

// UserSessions are userID's sessions that are live: their absolute end
// after now and last seen after idleSince; newest first.
func (s *Store) UserSessions(ctx context.Context, userID int64, now, idleSince time.Time) ([]BrowserSession, error) {
	rows, err := s.client(ctx).BrowserSession.Query().
		Where(browsersession.UserID(userID), browsersession.ExpiresAtGT(now), browsersession.LastSeenAtGT(idleSince)).
		Order(browsersession.ByCreatedAt(entsql.OrderDesc()), browsersession.ByID()).
		All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]BrowserSession, len(rows))
	for i, row := range rows {
		out[i] = browserSessionOf(row)
	}
	return out, nil
}

// DeleteEndedSessions removes the sessions past their absolute end (at or
// before now) or idle (last seen at or before idleSince), in batches
// (deleteInBatches), and returns how many.
func (s *Store) DeleteEndedSessions(ctx context.Context, now, idleSince time.Time) (int, error) {
	ended := browsersession.Or(
		browsersession.ExpiresAtLTE(now),
		browsersession.LastSeenAtLTE(idleSince),
	)
	// The ids are read by one condition at a time, in the order of its
	// index, as DeleteExpiredTokens reads them: for the two conditions at
	// once MariaDB merges both indexes, reading every ended session's id
	// and sorting them all for each batch.
	total := 0
	for _, by := range []struct {
		cond  predicate.BrowserSession
		order browsersession.OrderOption
	}{
		{browsersession.ExpiresAtLTE(now), browsersession.ByExpiresAt()},
		{browsersession.LastSeenAtLTE(idleSince), browsersession.ByLastSeenAt()},
	} {
		// By id and under the whole condition: a session seen again
		// since the query stays unless it has reached its end.
		n, err := deleteInBatches(ctx,
			func(ctx context.Context, limit int) ([]string, error) {
				return s.client(ctx).BrowserSession.Query().Where(by.cond).Order(by.order).Limit(limit).IDs(ctx)
			},
			func(ctx context.Context, ids []string) (int, error) {
				return s.client(ctx).BrowserSession.Delete().Where(browsersession.IDIn(ids...), ended).Exec(ctx)
			})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
