package storage

import (
	"context"
	"errors"

	"idp/database"
)

// The token service's transactions are opened and ended apart, as fosite's
// storage.Transactional asks (BeginTX, Commit, Rollback), rather than
// around a function as InTx runs them.

// tokenTxJoinedKey marks a context whose transaction belongs to an outer
// caller.
type tokenTxJoinedKey struct{}

// BeginTokenTx opens a transaction carried by the returned context; every
// Store method called with it joins it. Inside a transaction ctx already
// carries, it joins that one, and CommitTokenTx and RollbackTokenTx leave
// it to its owner.
func (s *Store) BeginTokenTx(ctx context.Context) (context.Context, error) {
	if _, ok := database.TxFrom(ctx); ok {
		return context.WithValue(ctx, tokenTxJoinedKey{}, true), nil
	}
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return ctx, wrap(err)
	}
	return database.WithTx(ctx, tx), nil
}

// CommitTokenTx commits the transaction BeginTokenTx opened.
func (s *Store) CommitTokenTx(ctx context.Context) error {
	tx, ok := database.TxFrom(ctx)
	if !ok {
		return errors.New("storage: commit without a transaction")
	}
	if ctx.Value(tokenTxJoinedKey{}) != nil {
		return nil
	}
	return wrap(tx.Commit())
}

// RollbackTokenTx rolls back the transaction BeginTokenTx opened.
func (s *Store) RollbackTokenTx(ctx context.Context) error {
	tx, ok := database.TxFrom(ctx)
	if !ok {
		return errors.New("storage: rollback without a transaction")
	}
	if ctx.Value(tokenTxJoinedKey{}) != nil {
		return nil
	}
	return tx.Rollback()
}
