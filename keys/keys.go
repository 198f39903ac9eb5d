// Package keys manages the RSA keys that sign idp's tokens: it generates
// them, keeps their private parts encrypted in the database, rotates them on
// a schedule that every verifier can follow, publishes them as a JSON Web Key
// Set, and signs and verifies compact JWS with them.
//
// A key moves next → active → retired → removed. A next key is published for
// PublishLead before it signs, so the key sets that verifiers have cached
// already hold it when the first token signed with it arrives. Exactly one
// active key signs. A retired key stays published until every token it
// signed has expired, then it is deleted.
//
// Several idp processes may share one database. They coordinate through it
// alone: a change is a conditional UPDATE whose affected-row count says
// whether this process made it, and inserts of next and active keys collide
// on the unique slot index, so the database, not a lock, guarantees at most
// one next and one active key.
package keys

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"idp/storage"
)

// Key states as stored in the state column and reported in KeyInfo.State.
const (
	StateNext    = storage.SigningKeyNext
	StateActive  = storage.SigningKeyActive
	StateRetired = storage.SigningKeyRetired
)

// Storage is the key table as the Manager uses it; *storage.Store
// implements it. Its conditional updates report whether they changed the
// row, and a key inserted or promoted into a taken slot fails with
// storage.ErrConflict: that is all the coordination between processes.
type Storage interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	SigningKeys(ctx context.Context) ([]*storage.SigningKey, error)
	SigningKey(ctx context.Context, kid string) (*storage.SigningKey, error)
	CreateSigningKey(ctx context.Context, k *storage.SigningKey) error
	SigningKeyHoldsSlot(ctx context.Context, kid, slot string) (bool, error)
	RetireActiveSigningKey(ctx context.Context, kid string, now time.Time) (bool, error)
	ActivateNextSigningKey(ctx context.Context, kid string, now time.Time, activatesAt *time.Time) (bool, error)
	SetNextSigningKeyActivation(ctx context.Context, kid string, at time.Time) error
	DeleteRetiredSigningKeys(ctx context.Context, kids []string) (int, error)
}

// Algorithm is the only JWS algorithm the keys sign and verify with.
const Algorithm = string(jose.RS256)

// Defaults for the zero values in Options.
const (
	DefaultSize            = 2048
	DefaultRotationPeriod  = 30 * 24 * time.Hour
	DefaultPublishLead     = 24 * time.Hour
	DefaultRefreshInterval = time.Minute
)

// removalSlack is added to a retired key's retention on top of
// RefreshInterval: processes that have not reloaded since the promotion may
// still sign with the old key for up to one refresh interval, and a minute
// covers clock skew between processes and a slow step.
const removalSlack = time.Minute

// ErrNoActiveKey is returned by Sign before a key has been loaded.
var ErrNoActiveKey = errors.New("keys: no active signing key loaded")

// Options configure a Manager. Zero values take the defaults described on
// each field; RetainRetired has no default because only the caller knows how
// long its tokens live.
type Options struct {
	Size            int              // RSA bits: 2048 (default when 0) or 3072; anything else is an error
	RotationPeriod  time.Duration    // how long a key is active before the next one takes over (default 30 days)
	PublishLead     time.Duration    // how long a next key is published before it signs (default 24h); see ValidateSchedule
	RetainRetired   time.Duration    // longest lifetime of a token signed by a key (the caller passes max of its token TTLs)
	RefreshInterval time.Duration    // how often each process re-reads the key table and runs a rotation step (default 1 min)
	Now             func() time.Time // nil means time.Now; tests pass a fake clock
	Logger          *slog.Logger     // nil means slog.Default()
}

// withDefaults fills in the defaults and checks that the schedule is one
// verifiers can follow.
func (o Options) withDefaults() (Options, error) {
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Size != 2048 && o.Size != 3072 {
		return o, fmt.Errorf("keys: key size %d bits is not supported (want 2048 or 3072)", o.Size)
	}
	if o.RotationPeriod == 0 {
		o.RotationPeriod = DefaultRotationPeriod
	}
	if o.PublishLead == 0 {
		o.PublishLead = DefaultPublishLead
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.RotationPeriod < 0 || o.PublishLead < 0 || o.RefreshInterval < 0:
		return o, errors.New("keys: RotationPeriod, PublishLead and RefreshInterval must not be negative")
	case o.RetainRetired <= 0:
		return o, errors.New("keys: RetainRetired must be positive: pass the longest lifetime of a signed token")
	}
	return o, ValidateSchedule(o.RotationPeriod, o.PublishLead, o.RefreshInterval)
}

// ValidateSchedule checks that a rotation schedule is one verifiers can
// follow; NewManager applies it, and a configuration checks its settings with
// it so that there is one rule. The publish lead must be shorter than the
// rotation period, and longer than twice the refresh interval: every process
// then publishes a next key before it signs even when one of its refreshes
// fails (Run retries at the next interval), and JWKSMaxAge, half of lead minus
// interval, stays at least half an interval.
func ValidateSchedule(rotationPeriod, publishLead, refreshInterval time.Duration) error {
	switch {
	case rotationPeriod <= 0 || publishLead <= 0 || refreshInterval <= 0:
		return errors.New("keys: the rotation period, publish lead and refresh interval must be positive")
	case publishLead <= 2*refreshInterval:
		return fmt.Errorf("keys: the publish lead (%s) must exceed twice the refresh interval (%s), so that every process publishes a next key before it signs", publishLead, refreshInterval)
	case publishLead >= rotationPeriod:
		return fmt.Errorf("keys: the publish lead (%s) must be shorter than the rotation period (%s)", publishLead, rotationPeriod)
	}
	return nil
}

// Manager owns the signing keys of one process. Sign, Verify and JWKS read an
// immutable snapshot through an atomic pointer, so the hot path takes no
// lock; Load builds a new snapshot and swaps it in.
type Manager struct {
	db   Storage
	aead aeadSealer
	opts Options
	log  *slog.Logger

	snap atomic.Pointer[snapshot]

	// loadMu serialises Load so that a slow read cannot replace the snapshot
	// of a newer one.
	loadMu sync.Mutex

	// reloadMu and lastReload limit the reloads that Verify triggers for an
	// unknown kid to one per second: anyone can send a token with a made-up
	// kid.
	reloadMu   sync.Mutex
	lastReload time.Time
}

// NewManager returns a Manager for the keys in db, sealed with kek (32 bytes,
// AES-256). It does not touch the database: call Load before signing.
func NewManager(db Storage, kek []byte, opts Options) (*Manager, error) {
	if db == nil {
		return nil, errors.New("keys: nil storage")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	aead, err := newSealer(kek)
	if err != nil {
		return nil, err
	}
	m := &Manager{db: db, aead: aead, opts: opts, log: opts.Logger}
	m.snap.Store(&snapshot{keys: map[string]*loadedKey{}})
	return m, nil
}

// now is the manager's clock, in UTC and truncated to the microsecond that
// MySQL's datetime(6) keeps, so a time read back compares equal to the one
// written.
func (m *Manager) now() time.Time {
	return m.opts.Now().UTC().Truncate(time.Microsecond)
}

// retention is how long a retired key stays published.
func (m *Manager) retention() time.Duration {
	return m.opts.RetainRetired + m.opts.RefreshInterval + removalSlack
}

// loadedKey is the decrypted material of one key. It never changes once
// built, so successive snapshots share it and only new keys are decrypted.
type loadedKey struct {
	kid  string
	priv *rsa.PrivateKey
	jwk  jose.JSONWebKey // public part, with kid, alg and use

	// headers caches the encoded JWS header per typ so that Sign does not
	// rebuild it on every call. A key signs for a whole rotation period and
	// callers use a handful of typ values, so the cache stays small.
	headers sync.Map // string → string
}

// snapshot is what the process knows about the key table as of one Load.
// Nothing in it changes after it is published (loadedKey.headers is a cache).
type snapshot struct {
	keys   map[string]*loadedKey // every published key, by kid
	active *loadedKey

	activeSince  time.Time
	nextRotation time.Time

	published string // sorted kids, to tell whether the JWKS must be rebuilt
	jwks      []byte
	etag      string
}

// Load re-reads the key table into memory. When the table has no active key
// it creates one (bootstrap; if two processes race, one insert wins via the
// slot index and the other just re-reads). Decrypts only keys not already in
// memory. Rebuilds the JWKS bytes and ETag only when the set of published
// keys changed.
func (m *Manager) Load(ctx context.Context) error {
	_, err := m.load(ctx)
	return err
}

// load is Load that also reports whether it created the bootstrap key.
func (m *Manager) load(ctx context.Context) (created bool, err error) {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()

	rows, err := m.readRows(ctx)
	if err != nil {
		return false, err
	}
	if active, _ := pick(rows); active == nil {
		created, err = m.bootstrap(ctx)
		if err != nil {
			return false, err
		}
		if rows, err = m.readRows(ctx); err != nil {
			return created, err
		}
	}
	old := m.snap.Load()
	s, err := m.buildSnapshot(old, rows)
	if err != nil {
		return created, err
	}
	m.snap.Store(s)
	if old.active != nil && s.active != nil && old.active.kid != s.active.kid {
		m.log.Info("keys: signing with a new key", "kid", s.active.kid, "previous_kid", old.active.kid)
	}
	return created, nil
}

// readRows returns every row of the key table, oldest first.
func (m *Manager) readRows(ctx context.Context) ([]*storage.SigningKey, error) {
	rows, err := m.db.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: read signing keys: %w", err)
	}
	return rows, nil
}

// pick returns the active and next rows, if any. It goes by slot, the column
// the unique index guards.
func pick(rows []*storage.SigningKey) (active, next *storage.SigningKey) {
	for _, r := range rows {
		switch r.Slot {
		case StateActive:
			active = r
		case StateNext:
			next = r
		}
	}
	return active, next
}

// buildSnapshot turns rows into a snapshot, reusing the decrypted keys and
// the JWKS of old where nothing changed.
func (m *Manager) buildSnapshot(old *snapshot, rows []*storage.SigningKey) (*snapshot, error) {
	s := &snapshot{keys: make(map[string]*loadedKey, len(rows))}
	for _, r := range rows {
		k := old.keys[r.ID]
		if k == nil {
			var err error
			if k, err = m.openRow(r); err != nil {
				return nil, err
			}
		}
		s.keys[r.ID] = k
	}
	active, next := pick(rows)
	if active != nil {
		s.active = s.keys[active.ID]
		s.activeSince = activatedAt(active)
		s.nextRotation = s.activeSince.Add(m.opts.RotationPeriod)
	}
	if next != nil {
		s.nextRotation = next.ActivatesAt
	}

	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	s.published = strings.Join(ids, " ")
	if old.jwks != nil && s.published == old.published {
		s.jwks, s.etag = old.jwks, old.etag
		return s, nil
	}
	// The order follows creation, not state, so that a promotion, which
	// changes no published key, leaves the bytes and the ETag alone.
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(rows))}
	for _, r := range rows {
		set.Keys = append(set.Keys, s.keys[r.ID].jwk)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: encode JWKS: %w", err)
	}
	sum := sha256.Sum256(body)
	s.jwks = body
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	return s, nil
}

// activatedAt is when a row started signing; rows written by this package
// always have activated_at once active, activates_at is the fallback.
func activatedAt(r *storage.SigningKey) time.Time {
	if r.ActivatedAt != nil {
		return *r.ActivatedAt
	}
	return r.ActivatesAt
}

// KeyInfo describes a key for `idp keys list` and rotation reports. It holds
// no key material.
type KeyInfo struct {
	ID          string     `json:"kid"`
	State       string     `json:"state"` // "next", "active" or "retired"
	Algorithm   string     `json:"alg"`
	Bits        int        `json:"bits"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	ActivatedAt *time.Time `json:"activated_at"`
	RetiredAt   *time.Time `json:"retired_at"`
	RemoveAfter *time.Time `json:"remove_after"` // retired keys only: when Step deletes it
}

// List reads the key table afresh and describes every key, oldest first.
func (m *Manager) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := m.readRows(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, m.info(r))
	}
	return out, nil
}

// info describes a row. Bits come from the public JWK, so no key is
// decrypted.
func (m *Manager) info(r *storage.SigningKey) KeyInfo {
	ki := KeyInfo{
		ID:          r.ID,
		State:       r.State,
		Algorithm:   r.Algorithm,
		CreatedAt:   r.CreatedAt,
		ActivatesAt: r.ActivatesAt,
		ActivatedAt: r.ActivatedAt,
		RetiredAt:   r.RetiredAt,
	}
	if pub, err := parsePublicJWK(r.PublicJWK); err == nil {
		ki.Bits = pub.N.BitLen()
	}
	if r.RetiredAt != nil {
		t := r.RetiredAt.Add(m.retention())
		ki.RemoveAfter = &t
	}
	return ki
}

// JWKS returns the prepared JSON Web Key Set (every published key: kty RSA,
// kid, alg RS256, use sig, n, e — never a private part) and its strong ETag
// (quoted, derived from the bytes). It returns the bytes built by the last
// Load that changed the set; callers must not modify them.
func (m *Manager) JWKS() (body []byte, etag string) {
	s := m.snap.Load()
	if s.jwks == nil {
		return []byte(`{"keys":[]}`), `"empty"`
	}
	return s.jwks, s.etag
}

// JWKSMaxAge is what the JWKS endpoint puts in Cache-Control max-age. A
// verifier that cached the set just before a next key was inserted must
// refetch before that key signs: the key reaches this process's JWKS within
// RefreshInterval, and it signs PublishLead after insertion, so max-age must
// stay below PublishLead - RefreshInterval; half of that, capped at an hour,
// leaves a wide margin.
func (m *Manager) JWKSMaxAge() time.Duration {
	return min(time.Hour, (m.opts.PublishLead-m.opts.RefreshInterval)/2)
}

// ActiveSince is when the key now signing became active (zero before Load).
func (m *Manager) ActiveSince() time.Time { return m.snap.Load().activeSince }

// NextRotation is when the next key is due to take over: its activates_at
// when one exists, otherwise the end of the active key's rotation period
// (zero before Load).
func (m *Manager) NextRotation() time.Time { return m.snap.Load().nextRotation }
