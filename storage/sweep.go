package storage

import (
	"context"

	"idp/database"
)

// deleteInBatches is the shape of every sweep: selectIDs reads the ids of
// at most limit rows to go, deleteIDs deletes those rows (by id and under
// the sweep's condition again, so that a row that stopped matching in
// between stays) and reports how many, batch after batch with the pauses
// of database.DeleteBatches until a batch comes back short. It returns how
// many rows went in all. Bounded batches keep each statement's locks short,
// so that a sweep over many rows never holds up the request path.
func deleteInBatches[ID any](ctx context.Context,
	selectIDs func(ctx context.Context, limit int) ([]ID, error),
	deleteIDs func(ctx context.Context, ids []ID) (int, error),
) (int, error) {
	n, err := database.DeleteBatches(ctx, func(ctx context.Context, limit int) (int, error) {
		ids, err := selectIDs(ctx, limit)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		return deleteIDs(ctx, ids)
	})
	return n, wrap(err)
}
