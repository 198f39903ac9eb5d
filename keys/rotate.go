package keys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"idp/storage"
)

// Step runs one rotation step: it creates the next key when the active key is
// within PublishLead of the end of its RotationPeriod (activates_at = end of
// period, but never sooner than now+PublishLead, so verifiers always get
// PublishLead to see it); promotes the next key to active when its
// activates_at has passed (the old active key becomes retired); and deletes
// retired keys past their retention. Every process may call it at the same
// time: each change is a conditional statement that exactly one of them
// performs, and the others see zero affected rows or a unique-index
// collision and do nothing. Then it reloads. It reports whether this call
// changed the table.
func (m *Manager) Step(ctx context.Context) (changed bool, err error) {
	changed, err = m.step(ctx)
	created, lerr := m.load(ctx)
	return changed || created, errors.Join(err, lerr)
}

func (m *Manager) step(ctx context.Context) (bool, error) {
	now := m.now()
	rows, err := m.readRows(ctx)
	if err != nil {
		return false, err
	}
	active, next := pick(rows)
	changed := false

	switch {
	case next != nil && !next.ActivatesAt.After(now):
		ok, err := m.promote(ctx, idOf(active), next.ID, now, nil)
		if err != nil {
			return false, err
		}
		changed = ok
		// Whether we promoted or lost to another process, the new active
		// key has just started its period (RotationPeriod > PublishLead),
		// so no next key is due yet.
	case active != nil && next == nil:
		end := activatedAt(active).Add(m.opts.RotationPeriod)
		if now.Before(end.Add(-m.opts.PublishLead)) {
			break
		}
		ok, err := m.createNext(ctx, active.ID, now, later(end, now.Add(m.opts.PublishLead)))
		if err != nil {
			return false, err
		}
		changed = ok
	}

	n, err := m.deleteExpired(ctx, rows, now)
	if err != nil {
		return changed, err
	}
	return changed || n > 0, nil
}

// Rotate is `idp keys rotate`. When there is no next key it creates one that
// activates after PublishLead; when a next key exists it brings its
// activation forward to max(its created_at+PublishLead, now), so verifiers
// still get PublishLead to fetch it. With immediate true the next key
// (created if needed) becomes active at once: an emergency, for a leaked
// key, after which verifiers that cached the key set without the new key must
// refetch it. Rotate returns the key that is or will become active. When
// several processes rotate at once, exactly one performs a given promotion.
func (m *Manager) Rotate(ctx context.Context, immediate bool) (KeyInfo, error) {
	ki, _, err := m.rotate(ctx, immediate)
	return ki, err
}

// rotate is Rotate that also reports whether this call performed the
// promotion.
func (m *Manager) rotate(ctx context.Context, immediate bool) (KeyInfo, bool, error) {
	// Each pass either finishes or loses a race to another process that
	// changed the table; the next pass starts from what that process did.
	for range 5 {
		now := m.now()
		rows, err := m.readRows(ctx)
		if err != nil {
			return KeyInfo{}, false, err
		}
		active, next := pick(rows)
		if active == nil {
			if _, err := m.load(ctx); err != nil { // bootstraps
				return KeyInfo{}, false, err
			}
			continue
		}
		if next == nil {
			if _, err := m.createNext(ctx, active.ID, now, now.Add(m.opts.PublishLead)); err != nil {
				return KeyInfo{}, false, err
			}
			continue // ours or another process's: read it back
		}

		target := now
		if !immediate {
			target = earlier(next.ActivatesAt, later(next.CreatedAt.Add(m.opts.PublishLead), now))
		}
		if target.After(now) {
			if target.Before(next.ActivatesAt) {
				// Concurrent callers compute the same target; whoever
				// writes it, the result is the same.
				if err := m.db.SetNextSigningKeyActivation(ctx, next.ID, target); err != nil {
					return KeyInfo{}, false, fmt.Errorf("keys: bring next key forward: %w", err)
				}
				m.log.Info("keys: next key activation brought forward", "kid", next.ID, "activates_at", target)
			}
			return m.reportKey(ctx, next.ID, false)
		}

		var setActivates *time.Time
		if next.ActivatesAt.After(now) {
			setActivates = &now
		}
		ok, err := m.promote(ctx, active.ID, next.ID, now, setActivates)
		if err != nil {
			return KeyInfo{}, false, err
		}
		ki, _, err := m.reportKey(ctx, next.ID, ok)
		if err != nil {
			return KeyInfo{}, false, err
		}
		if ok || ki.State == StateActive {
			// We promoted it, or another process promoted the same key.
			return ki, ok, nil
		}
	}
	return KeyInfo{}, false, errors.New("keys: rotate: the key table kept changing under concurrent rotations; try again")
}

// reportKey reloads and describes the key kid.
func (m *Manager) reportKey(ctx context.Context, kid string, promoted bool) (KeyInfo, bool, error) {
	if err := m.Load(ctx); err != nil {
		return KeyInfo{}, false, err
	}
	r, err := m.db.SigningKey(ctx, kid)
	if err != nil {
		return KeyInfo{}, false, fmt.Errorf("keys: read key %s: %w", kid, err)
	}
	return m.info(r), promoted, nil
}

// Run calls Step every RefreshInterval until ctx ends, starting at once.
// Errors are logged, not fatal: the keys already in memory keep signing and
// the next step retries. It returns when ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.RefreshInterval)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		stepCtx, cancel := context.WithTimeout(ctx, max(m.opts.RefreshInterval, 30*time.Second))
		if _, err := m.Step(stepCtx); err != nil && ctx.Err() == nil {
			m.log.Error("keys: rotation step failed", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bootstrap inserts an active key. If another process inserts one first, the
// slot index refuses ours and bootstrap reports false.
func (m *Manager) bootstrap(ctx context.Context) (bool, error) {
	km, err := m.generate()
	if err != nil {
		return false, err
	}
	now := m.now()
	err = m.db.CreateSigningKey(ctx, &storage.SigningKey{
		ID:          km.kid,
		State:       StateActive,
		Slot:        StateActive,
		Algorithm:   Algorithm,
		PrivateKey:  km.sealed,
		PublicJWK:   km.publicJWK,
		CreatedAt:   now,
		ActivatesAt: now,
		ActivatedAt: &now,
	})
	if errors.Is(err, storage.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: create first signing key: %w", err)
	}
	m.log.Info("keys: created the first signing key", "kid", km.kid)
	return true, nil
}

// createNext inserts a next key that activates at activatesAt, provided
// activeID is still the active key (the schedule was computed from it). The
// slot index refuses a second next key; either way of losing reports false.
// The key is generated before the transaction so that the write lock is not
// held for the ~100 ms that takes.
func (m *Manager) createNext(ctx context.Context, activeID string, now, activatesAt time.Time) (bool, error) {
	km, err := m.generate()
	if err != nil {
		return false, err
	}
	ok, err := m.inTx(ctx, func(ctx context.Context) (bool, error) {
		still, err := m.db.SigningKeyHoldsSlot(ctx, activeID, StateActive)
		if err != nil || !still {
			return false, err
		}
		err = m.db.CreateSigningKey(ctx, &storage.SigningKey{
			ID:          km.kid,
			State:       StateNext,
			Slot:        StateNext,
			Algorithm:   Algorithm,
			PrivateKey:  km.sealed,
			PublicJWK:   km.publicJWK,
			CreatedAt:   now,
			ActivatesAt: activatesAt,
		})
		if errors.Is(err, storage.ErrConflict) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return false, fmt.Errorf("keys: create next signing key: %w", err)
	}
	if ok {
		m.log.Info("keys: published the next signing key", "kid", km.kid, "activates_at", activatesAt)
	}
	return ok, nil
}

// promote retires activeID (when not empty) and makes nextID active, in one
// transaction. Each UPDATE is conditional on the row still holding its slot,
// so of several processes promoting at once exactly one sees an affected row
// on both; the others roll back. The active slot is freed before it is taken
// because the unique index is checked per statement. setActivates, when not
// nil, also moves activates_at (an early promotion by Rotate).
func (m *Manager) promote(ctx context.Context, activeID, nextID string, now time.Time, setActivates *time.Time) (bool, error) {
	ok, err := m.inTx(ctx, func(ctx context.Context) (bool, error) {
		if activeID != "" {
			retired, err := m.db.RetireActiveSigningKey(ctx, activeID, now)
			if err != nil || !retired {
				return false, err
			}
		}
		promoted, err := m.db.ActivateNextSigningKey(ctx, nextID, now, setActivates)
		if errors.Is(err, storage.ErrConflict) {
			// No active key was retired (activeID empty) and another
			// process has since inserted one.
			return false, nil
		}
		return promoted, err
	})
	if err != nil {
		return false, fmt.Errorf("keys: promote next signing key: %w", err)
	}
	if ok {
		m.log.Info("keys: promoted the next signing key", "kid", nextID, "retired_kid", activeID)
	}
	return ok, nil
}

// deleteExpired deletes the retired keys among rows whose retention has
// passed. The times are compared here rather than in SQL, where SQLite would
// compare them as text.
func (m *Manager) deleteExpired(ctx context.Context, rows []*storage.SigningKey, now time.Time) (int, error) {
	var ids []string
	for _, r := range rows {
		if r.State == StateRetired && r.RetiredAt != nil && !now.Before(r.RetiredAt.Add(m.retention())) {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := m.db.DeleteRetiredSigningKeys(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("keys: delete retired signing keys: %w", err)
	}
	if n > 0 {
		m.log.Info("keys: deleted retired signing keys", "count", n, "kids", ids)
	}
	return n, nil
}

// inTx runs fn in a transaction (the storage calls made with the context
// it is given join it) and commits when fn reports true; false (a lost race)
// or an error rolls back.
func (m *Manager) inTx(ctx context.Context, fn func(ctx context.Context) (bool, error)) (bool, error) {
	// Processes rotating at once can deadlock on MySQL's index locks (or
	// fail serialization on PostgreSQL); the loser's transaction is rolled
	// back whole, so it is simply run again and then sees the winner's
	// write.
	var ok bool
	err := storage.Retry(ctx, 4, func() (err error) {
		ok, err = m.inTxOnce(ctx, fn)
		return err
	})
	return ok, err
}

// errLostRace rolls back the transaction of a step that lost to another
// process; inTxOnce reports it as false.
var errLostRace = errors.New("keys: lost a race to another process")

func (m *Manager) inTxOnce(ctx context.Context, fn func(ctx context.Context) (bool, error)) (bool, error) {
	err := m.db.InTx(ctx, func(ctx context.Context) error {
		ok, err := fn(ctx)
		if err == nil && !ok {
			err = errLostRace
		}
		return err
	})
	if errors.Is(err, errLostRace) {
		return false, nil
	}
	return err == nil, err
}

func idOf(r *storage.SigningKey) string {
	if r == nil {
		return ""
	}
	return r.ID
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
