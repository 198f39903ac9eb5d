package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/fake"
	"idp/storage"
)

// t0 is where every fake clock starts.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newClock() *fake.Clock { return fake.NewClock(t0) }

// testKEK is the key-encryption key of the tests' managers.
var testKEK = []byte("0123456789abcdef0123456789abcdef")

// testOptions is a schedule with round numbers: a key is active for 10h, the
// next one is published 2h before it signs, and a retired key stays 1h02m
// (1h retention + 1m refresh + 1m slack).
func testOptions(clock *fake.Clock) Options {
	return Options{
		RotationPeriod:  10 * time.Hour,
		PublishLead:     2 * time.Hour,
		RetainRetired:   time.Hour,
		RefreshInterval: time.Minute,
		Now:             clock.Now,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newManager returns a Manager over db with opts and the test KEK.
func newManager(t testing.TB, db Storage, opts Options) *Manager {
	t.Helper()
	m, err := NewManager(db, testKEK, opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// loadedManager returns a Manager over db that has loaded (and so
// bootstrapped) its keys.
func loadedManager(t testing.TB, db Storage, opts Options) *Manager {
	t.Helper()
	m := newManager(t, db, opts)
	if err := m.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

// eachPair runs fn per engine with two separately opened connections pools
// to one fresh database, as two idp processes would have. On SQLite the
// database is a file.
func eachPair(t *testing.T, fn func(t *testing.T, a, b *database.DB)) {
	t.Helper()
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			url := e.NewURL(t)
			a := databasetest.Open(t, url)
			b := databasetest.Open(t, url)
			fn(t, a, b)
		})
	}
}

// checkTable fails t unless the table holds exactly one active key, at most
// one next key, and every row's slot agrees with its state. The unique index
// guarantees the slots; this checks that the code keeps state in step.
func checkTable(t testing.TB, db *storage.Store) []*storage.SigningKey {
	t.Helper()
	rows, err := db.SigningKeys(context.Background())
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	count := map[string]int{}
	for _, r := range rows {
		count[r.State]++
		slot := r.Slot
		want := r.State
		if r.State == StateRetired {
			want = ""
		}
		if slot != want {
			t.Errorf("key %s: state %s but slot %q", r.ID, r.State, slot)
		}
	}
	if count[StateActive] != 1 || count[StateNext] > 1 {
		t.Errorf("table has %d active and %d next keys, want 1 and at most 1", count[StateActive], count[StateNext])
	}
	return rows
}

// activeKID is the kid the manager signs with now.
func activeKID(t testing.TB, m *Manager) string {
	t.Helper()
	tok, err := m.Sign([]byte(`{}`), "")
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	kid, _ := header(t, tok)["kid"].(string)
	return kid
}

// header decodes the protected header of a compact JWS without verifying it.
func header(t testing.TB, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("header of %q: %v", tok, err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("header of %q: %v", tok, err)
	}
	return h
}

// noStorage is a store on no database, for the tests that never reach it.
func noStorage() *storage.Store { return storage.New(&database.DB{}) }

// movedKeyStore reads the table as if the sealed private key of row from
// had been copied into row to, as a hand edit or a mixed restore would.
type movedKeyStore struct {
	Storage
	from, to string
}

func (s movedKeyStore) SigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	rows, err := s.Storage.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	for _, r := range rows {
		if r.ID == s.from {
			sealed = r.PrivateKey
		}
	}
	for _, r := range rows {
		if r.ID == s.to {
			r.PrivateKey = sealed
		}
	}
	return rows, nil
}
