package database

import (
	"context"
	"fmt"

	"idp/ent"
)

type txKey struct{}

// WithTx returns a context that carries tx. Code that reads or writes
// through Client(ctx, …) then joins that transaction: this is how a user row
// and the tokens of its signup, or a reset code and its mail, commit together
// although different packages write them.
func WithTx(ctx context.Context, tx *ent.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxFrom returns the transaction ctx carries, if any.
func TxFrom(ctx context.Context) (*ent.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(*ent.Tx)
	return tx, ok
}

// Client returns the client of the transaction ctx carries, or db.
func Client(ctx context.Context, db *ent.Client) *ent.Client {
	if tx, ok := TxFrom(ctx); ok {
		return tx.Client()
	}
	return db
}

// InTx runs fn in a transaction carried by its context, committing when fn
// returns nil and rolling back otherwise. When ctx already carries a
// transaction, fn joins it and the outer caller commits.
func InTx(ctx context.Context, db *ent.Client, fn func(ctx context.Context) error) error {
	if _, ok := TxFrom(ctx); ok {
		return fn(ctx)
	}
	tx, err := db.Tx(ctx)
	if err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	if err := fn(WithTx(ctx, tx)); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	return nil
}
