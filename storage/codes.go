package storage

import (
	"context"
	"time"

	"idp/ent"
	"idp/ent/onetimecode"
	"idp/ent/predicate"
)

// CodePurpose is what a one-time code is for. A user holds at most one
// code per purpose.
type CodePurpose string

// The purposes of one-time codes.
const (
	CodeReset       CodePurpose = "reset"
	CodeVerify      CodePurpose = "verify"
	CodeEmailChange CodePurpose = "email_change"
)

// Code is a user's one-time code of one purpose. Only the code's HMAC is
// stored, never the code.
type Code struct {
	UserID    int64
	Purpose   CodePurpose
	Hash      []byte
	Attempts  int // wrong tries so far
	ExpiresAt time.Time
	CreatedAt time.Time
	// NewEmail is the address an email change code moves the account to;
	// empty for the other purposes.
	NewEmail string
}

// Live reports whether the code still works at now with fewer than
// maxAttempts wrong tries: the condition the queries below put on a live
// code.
func (c *Code) Live(now time.Time, maxAttempts int) bool {
	return c.Attempts < maxAttempts && now.Before(c.ExpiresAt)
}

func codeOf(r *ent.OneTimeCode) *Code {
	c := &Code{
		UserID:    r.UserID,
		Purpose:   CodePurpose(r.Purpose),
		Hash:      r.CodeHash,
		Attempts:  r.Attempts,
		ExpiresAt: r.ExpiresAt,
		CreatedAt: r.CreatedAt,
	}
	if r.NewEmail != nil {
		c.NewEmail = *r.NewEmail
	}
	return c
}

func codeWhere(userID int64, p CodePurpose) predicate.OneTimeCode {
	return onetimecode.And(onetimecode.UserID(userID), onetimecode.PurposeEQ(onetimecode.Purpose(p)))
}

// codeLive is the SQL of Code.Live.
func codeLive(now time.Time, maxAttempts int) predicate.OneTimeCode {
	return onetimecode.And(onetimecode.AttemptsLT(maxAttempts), onetimecode.ExpiresAtGT(now))
}

// PutCode stores c, with no wrong tries, replacing the user's code of that
// purpose (and the address it named) in one statement.
func (s *Store) PutCode(ctx context.Context, c Code) error {
	// Under the user's row, as every write for a user: a code written
	// while the account is erased would outlive it (ErrNotFound instead).
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.holdUser(ctx, c.UserID); err != nil {
			return err
		}
		q := s.client(ctx).OneTimeCode.Create().
			SetUserID(c.UserID).
			SetPurpose(onetimecode.Purpose(c.Purpose)).
			SetCodeHash(c.Hash).
			SetAttempts(0).
			SetExpiresAt(c.ExpiresAt).
			SetCreatedAt(c.CreatedAt)
		if c.NewEmail != "" {
			q.SetNewEmail(c.NewEmail)
		}
		return wrap(q.OnConflictColumns(onetimecode.FieldUserID, onetimecode.FieldPurpose).
			UpdateNewValues().
			Exec(ctx))
	})
}

// CodeOf returns the user's code of purpose p, live or not; ErrNotFound
// when there is none.
func (s *Store) CodeOf(ctx context.Context, userID int64, p CodePurpose) (*Code, error) {
	r, err := s.client(ctx).OneTimeCode.Query().Where(codeWhere(userID, p)).Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return codeOf(r), nil
}

// LiveCodeOf returns the user's code of purpose p while it is live at now
// with fewer than maxAttempts wrong tries; ErrNotFound otherwise.
func (s *Store) LiveCodeOf(ctx context.Context, userID int64, p CodePurpose, now time.Time, maxAttempts int) (*Code, error) {
	r, err := s.client(ctx).OneTimeCode.Query().Where(codeWhere(userID, p), codeLive(now, maxAttempts)).Only(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	return codeOf(r), nil
}

// HasLiveCode reports whether the user holds a code of purpose p live at
// now with fewer than maxAttempts wrong tries.
func (s *Store) HasLiveCode(ctx context.Context, userID int64, p CodePurpose, now time.Time, maxAttempts int) (bool, error) {
	ok, err := s.client(ctx).OneTimeCode.Query().Where(codeWhere(userID, p), codeLive(now, maxAttempts)).Exist(ctx)
	return ok, wrap(err)
}

// CodesOf returns the user's codes of the purposes ps, in one query.
func (s *Store) CodesOf(ctx context.Context, userID int64, ps ...CodePurpose) ([]*Code, error) {
	rows, err := s.client(ctx).OneTimeCode.Query().Where(
		onetimecode.UserID(userID),
		onetimecode.PurposeIn(entPurposes(ps)...),
	).All(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*Code, len(rows))
	for i, r := range rows {
		out[i] = codeOf(r)
	}
	return out, nil
}

// CountCodeAttempt adds a wrong try to the user's code of purpose p, if
// there is one; the database does the increment, so concurrent tries each
// count.
func (s *Store) CountCodeAttempt(ctx context.Context, userID int64, p CodePurpose) error {
	_, err := s.client(ctx).OneTimeCode.Update().
		Where(codeWhere(userID, p)).
		AddAttempts(1).
		Save(ctx)
	return wrap(err)
}

// ConsumeCode deletes the user's code of purpose p only while its hash is
// hash and it is live at now with fewer than maxAttempts wrong tries, and
// reports whether it did: of two concurrent uses of one code exactly one
// deletes it.
func (s *Store) ConsumeCode(ctx context.Context, userID int64, p CodePurpose, hash []byte, now time.Time, maxAttempts int) (bool, error) {
	n, err := s.client(ctx).OneTimeCode.Delete().Where(
		codeWhere(userID, p),
		onetimecode.CodeHash(hash),
		codeLive(now, maxAttempts),
	).Exec(ctx)
	return n > 0, wrap(err)
}

// DeleteCodes deletes the user's codes of the purposes ps, live or not.
func (s *Store) DeleteCodes(ctx context.Context, userID int64, ps ...CodePurpose) error {
	q := s.client(ctx).OneTimeCode.Delete()
	if len(ps) == 1 {
		q.Where(codeWhere(userID, ps[0]))
	} else {
		q.Where(onetimecode.UserID(userID), onetimecode.PurposeIn(entPurposes(ps)...))
	}
	_, err := q.Exec(ctx)
	return wrap(err)
}

// DeleteExpiredCodes removes the codes of every purpose that expired
// before now, in batches (deleteInBatches), and reports how many.
func (s *Store) DeleteExpiredCodes(ctx context.Context, now time.Time) (int, error) {
	expired := onetimecode.ExpiresAtLT(now)
	return deleteInBatches(ctx,
		func(ctx context.Context, limit int) ([]int, error) {
			return s.db.OneTimeCode.Query().Where(expired).Limit(limit).IDs(ctx)
		},
		func(ctx context.Context, ids []int) (int, error) {
			return s.db.OneTimeCode.Delete().Where(onetimecode.IDIn(ids...), expired).Exec(ctx)
		})
}

func entPurposes(ps []CodePurpose) []onetimecode.Purpose {
	out := make([]onetimecode.Purpose, len(ps))
	for i, p := range ps {
		out[i] = onetimecode.Purpose(p)
	}
	return out
}
