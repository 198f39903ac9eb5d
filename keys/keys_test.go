package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/storage"
)

func TestBootstrapSignVerify(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m := newManager(t, storage.New(db), testOptions(clock))
		if _, err := m.Sign([]byte("x"), ""); !errors.Is(err, ErrNoActiveKey) {
			t.Fatalf("Sign before Load: err = %v, want ErrNoActiveKey", err)
		}
		if err := m.Load(ctx); err != nil {
			t.Fatal(err)
		}
		// A second Load, and a second process, must not add keys.
		if err := m.Load(ctx); err != nil {
			t.Fatal(err)
		}
		loadedManager(t, storage.New(db), testOptions(clock))

		infos, err := m.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].State != StateActive {
			t.Fatalf("after bootstrap List = %+v, want one active key", infos)
		}
		k := infos[0]
		if k.Bits != 2048 || k.Algorithm != "RS256" || !k.CreatedAt.Equal(t0) || k.ActivatedAt == nil || !k.ActivatedAt.Equal(t0) {
			t.Errorf("bootstrap key = %+v", k)
		}
		if !m.ActiveSince().Equal(t0) || !m.NextRotation().Equal(t0.Add(10*time.Hour)) {
			t.Errorf("ActiveSince %v NextRotation %v, want %v and %v", m.ActiveSince(), m.NextRotation(), t0, t0.Add(10*time.Hour))
		}

		payload := []byte(`{"sub":"alice"}`)
		for _, typ := range []string{"at+jwt", "JWT", ""} {
			tok, err := m.Sign(payload, typ)
			if err != nil {
				t.Fatal(err)
			}
			h := header(t, tok)
			if h["alg"] != "RS256" || h["kid"] != k.ID {
				t.Errorf("typ %q: header %v, want alg RS256 and kid %s", typ, h, k.ID)
			}
			if got, has := h["typ"]; (typ == "" && has) || (typ != "" && got != typ) {
				t.Errorf("typ %q: header typ = %v", typ, got)
			}
			v, err := m.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(v.Payload, payload) || v.KeyID != k.ID || v.Type != typ {
				t.Errorf("Verify = %+v", v)
			}
		}
	})
}

// TestLifecycle walks a key from bootstrap to removal with a fake clock.
// Schedule (testOptions): active 10h, next published 2h ahead, retired keys
// kept 1h02m.
func TestLifecycle(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m := loadedManager(t, storage.New(db), testOptions(clock))
		kid1 := activeKID(t, m)
		body1, etag1 := m.JWKS()
		key1 := m.snap.Load().active

		step := func(at time.Duration, wantChanged bool) {
			t.Helper()
			clock.Set(t0.Add(at))
			changed, err := m.Step(ctx)
			if err != nil {
				t.Fatalf("Step at +%s: %v", at, err)
			}
			if changed != wantChanged {
				t.Fatalf("Step at +%s: changed = %v, want %v", at, changed, wantChanged)
			}
			checkTable(t, storage.New(db))
		}
		jwksKIDs := func() []string {
			t.Helper()
			body, _ := m.JWKS()
			var set struct{ Keys []struct{ Kid string } }
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range set.Keys {
				kids = append(kids, k.Kid)
			}
			slices.Sort(kids)
			return kids
		}

		step(0, false)
		step(7*time.Hour+59*time.Minute, false)
		// Reloads of an unchanged table reuse the decrypted key and the
		// prepared JWKS bytes.
		if body, etag := m.JWKS(); etag != etag1 || &body[0] != &body1[0] {
			t.Errorf("JWKS rebuilt without a change of keys")
		}
		if m.snap.Load().active != key1 {
			t.Errorf("Load decrypted a key it already had")
		}

		// +8h: the next key is published, activating at +10h.
		step(8*time.Hour, true)
		infos, _ := m.List(ctx)
		if len(infos) != 2 || infos[1].State != StateNext || !infos[1].ActivatesAt.Equal(t0.Add(10*time.Hour)) {
			t.Fatalf("after +8h List = %+v, want a next key activating at +10h", infos)
		}
		kid2 := infos[1].ID
		if got, want := jwksKIDs(), sorted(kid1, kid2); !slices.Equal(got, want) {
			t.Errorf("JWKS kids = %v, want %v", got, want)
		}
		_, etag2 := m.JWKS()
		if etag2 == etag1 {
			t.Errorf("ETag did not change when the next key was published")
		}
		if got := activeKID(t, m); got != kid1 {
			t.Errorf("signing with %s while the next key is only published, want %s", got, kid1)
		}
		if !m.NextRotation().Equal(t0.Add(10 * time.Hour)) {
			t.Errorf("NextRotation = %v", m.NextRotation())
		}
		old, err := m.Sign([]byte(`{"n":1}`), "at+jwt")
		if err != nil {
			t.Fatal(err)
		}

		step(9*time.Hour+59*time.Minute, false)
		if got := activeKID(t, m); got != kid1 {
			t.Errorf("signing with %s before activation, want %s", got, kid1)
		}

		// +10h: the next key takes over; the set of published keys is
		// unchanged, so the JWKS bytes and ETag are too.
		step(10*time.Hour, true)
		if got := activeKID(t, m); got != kid2 {
			t.Errorf("after promotion signing with %s, want %s", got, kid2)
		}
		if _, etag := m.JWKS(); etag != etag2 {
			t.Errorf("ETag changed on a promotion, which changes no published key")
		}
		if !m.ActiveSince().Equal(t0.Add(10 * time.Hour)) {
			t.Errorf("ActiveSince = %v", m.ActiveSince())
		}
		if v, err := m.Verify(old); err != nil || v.KeyID != kid1 {
			t.Errorf("token signed before the rotation: %+v, %v", v, err)
		}
		infos, _ = m.List(ctx)
		if infos[0].State != StateRetired || infos[0].RemoveAfter == nil || !infos[0].RemoveAfter.Equal(t0.Add(11*time.Hour+2*time.Minute)) {
			t.Errorf("retired key = %+v, want removal at +11h02m", infos[0])
		}

		// The retired key stays published for its retention...
		step(11*time.Hour+time.Minute, false)
		if got, want := jwksKIDs(), sorted(kid1, kid2); !slices.Equal(got, want) {
			t.Errorf("before removal JWKS kids = %v, want %v", got, want)
		}
		if _, err := m.Verify(old); err != nil {
			t.Errorf("token of the retired key before removal: %v", err)
		}
		// ...and no longer.
		step(11*time.Hour+2*time.Minute, true)
		if got := jwksKIDs(); !slices.Equal(got, []string{kid2}) {
			t.Errorf("after removal JWKS kids = %v, want [%s]", got, kid2)
		}
		if _, etag := m.JWKS(); etag == etag2 {
			t.Errorf("ETag did not change when the retired key was removed")
		}
		if _, err := m.Verify(old); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("token whose key was removed: err = %v, want ErrInvalidToken", err)
		}

		// The next cycle starts from the new key's activation.
		step(17*time.Hour+59*time.Minute, false)
		step(18*time.Hour, true)
		infos, _ = m.List(ctx)
		if len(infos) != 2 || infos[1].State != StateNext || !infos[1].ActivatesAt.Equal(t0.Add(20*time.Hour)) {
			t.Errorf("second cycle List = %+v", infos)
		}
	})
}

// TestLateStep covers a process that was down past the end of a period: the
// next key still gets PublishLead before it signs.
func TestLateStep(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m := loadedManager(t, storage.New(db), testOptions(clock))
		clock.Set(t0.Add(15 * time.Hour))
		if _, err := m.Step(ctx); err != nil {
			t.Fatal(err)
		}
		infos, _ := m.List(ctx)
		if len(infos) != 2 || !infos[1].ActivatesAt.Equal(t0.Add(17*time.Hour)) {
			t.Errorf("List = %+v, want a next key activating at now+PublishLead (+17h)", infos)
		}
	})
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestEncryptedAtRest(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m := loadedManager(t, storage.New(db), testOptions(clock))
		k := m.snap.Load().active
		row, err := storage.New(db).SigningKey(ctx, k.kid)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			t.Fatal(err)
		}
		for name, secret := range map[string][]byte{
			"PKCS#8 DER":       der,
			"modulus":          k.priv.N.Bytes(),
			"private exponent": k.priv.D.Bytes(),
			"prime":            k.priv.Primes[0].Bytes(),
		} {
			if bytes.Contains(row.PrivateKey, secret) {
				t.Errorf("private_key column contains the key's %s", name)
			}
		}
		if len(row.PrivateKey) != 12+len(der)+16 {
			t.Errorf("private_key is %d bytes, want nonce + DER + tag = %d", len(row.PrivateKey), 12+len(der)+16)
		}
		var pub map[string]any
		if err := json.Unmarshal(row.PublicJWK, &pub); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, has := pub[f]; has {
				t.Errorf("public_jwk has private member %q", f)
			}
		}

		// Another KEK cannot open the keys, and says so.
		otherKEK := bytes.Repeat([]byte{7}, 32)
		other, err := NewManager(storage.New(db), otherKEK, testOptions(clock))
		if err != nil {
			t.Fatal(err)
		}
		err = other.Load(ctx)
		if !errors.Is(err, ErrKEKMismatch) || !strings.Contains(err.Error(), "key-encryption key does not match") {
			t.Fatalf("Load with another KEK: err = %v, want ErrKEKMismatch", err)
		}
		if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(otherKEK)) || strings.Contains(err.Error(), string(testKEK)) {
			t.Errorf("error names a KEK: %v", err)
		}

		// A sealed key moved to another row does not open: the kid is the
		// additional data.
		if _, err := m.Rotate(ctx, false); err != nil {
			t.Fatal(err)
		}
		_, next := pick(checkTable(t, storage.New(db)))
		moved := movedKeyStore{Storage: storage.New(db), from: row.ID, to: next.ID}
		if err := newManager(t, moved, testOptions(clock)).Load(ctx); !errors.Is(err, ErrKEKMismatch) {
			t.Errorf("Load with a sealed key moved between rows: err = %v, want ErrKEKMismatch", err)
		}
	})
}

func TestJWKSPublicFieldsOnly(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := loadedManager(t, storage.New(db), testOptions(newClock()))
		if _, err := m.Rotate(ctx, false); err != nil { // two keys in the set
			t.Fatal(err)
		}
		body, etag := m.JWKS()
		if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
			t.Errorf("ETag %s is not a quoted strong tag", etag)
		}
		var set struct{ Keys []map[string]any }
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		infos, _ := m.List(ctx)
		if len(set.Keys) != len(infos) || len(set.Keys) != 2 {
			t.Fatalf("JWKS has %d keys, table %d, want 2", len(set.Keys), len(infos))
		}
		want := []string{"alg", "e", "kid", "kty", "n", "use"}
		for i, k := range set.Keys {
			var fields []string
			for f := range k {
				fields = append(fields, f)
			}
			slices.Sort(fields)
			if !slices.Equal(fields, want) {
				t.Errorf("key %d has members %v, want exactly %v", i, fields, want)
			}
			if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["e"] != "AQAB" || k["kid"] != infos[i].ID {
				t.Errorf("key %d = %v", i, k)
			}
			n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
			if new(big.Int).SetBytes(n).BitLen() != 2048 {
				t.Errorf("key %d: n is not a 2048-bit modulus", i)
			}
		}
	})
}

// TestValidateSchedule: the publish lead lies strictly between twice the
// refresh interval and the rotation period; NewManager refuses what
// ValidateSchedule refuses.
func TestValidateSchedule(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		period, lead, refresh time.Duration
		ok                    bool
	}{
		{30 * day, day, time.Minute, true},
		{30 * day, 2*time.Minute + time.Second, time.Minute, true},
		{30 * day, 2 * time.Minute, time.Minute, false},
		{30 * day, 90 * time.Second, time.Minute, false},
		{day, day, time.Minute, false},
		{day, day - time.Second, time.Minute, true},
		{30 * day, 0, time.Minute, false},
	}
	for _, tc := range tests {
		err := ValidateSchedule(tc.period, tc.lead, tc.refresh)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSchedule(%s, %s, %s) = %v, want ok %v", tc.period, tc.lead, tc.refresh, err, tc.ok)
		}
		_, merr := NewManager(noStorage(), testKEK, Options{RotationPeriod: tc.period, PublishLead: tc.lead, RefreshInterval: tc.refresh, RetainRetired: time.Hour})
		if tc.lead > 0 && (merr == nil) != tc.ok {
			t.Errorf("NewManager with period %s, lead %s, refresh %s: %v, want ok %v", tc.period, tc.lead, tc.refresh, merr, tc.ok)
		}
	}
}

func TestOptions(t *testing.T) {
	db := noStorage()
	base := Options{RetainRetired: time.Hour}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"defaults", func(*Options) {}, ""},
		{"3072 bits", func(o *Options) { o.Size = 3072 }, ""},
		{"1024 bits", func(o *Options) { o.Size = 1024 }, "1024 bits is not supported"},
		{"4096 bits", func(o *Options) { o.Size = 4096 }, "4096 bits is not supported"},
		{"no retention", func(o *Options) { o.RetainRetired = 0 }, "RetainRetired must be positive"},
		{"lead within refresh", func(o *Options) { o.PublishLead, o.RefreshInterval = time.Minute, time.Minute }, "twice the refresh interval"},
		// The rule cmd/idp's configuration applies too (ValidateSchedule).
		{"lead within twice refresh", func(o *Options) { o.PublishLead, o.RefreshInterval = 90*time.Second, time.Minute }, "twice the refresh interval"},
		{"period within lead", func(o *Options) { o.RotationPeriod = time.Hour }, "shorter than the rotation period"},
		{"negative", func(o *Options) { o.RefreshInterval = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			m, err := NewManager(db, testKEK, o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewManager: %v", err)
				}
				if m.opts.RotationPeriod != 30*24*time.Hour || m.opts.PublishLead != 24*time.Hour || m.opts.RefreshInterval != time.Minute {
					t.Errorf("defaults = %+v", m.opts)
				}
				if got := m.JWKSMaxAge(); got != time.Hour {
					t.Errorf("JWKSMaxAge = %v, want 1h", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewManager: err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	for _, kek := range [][]byte{nil, make([]byte, 16), make([]byte, 31)} {
		if _, err := NewManager(db, kek, base); err == nil {
			t.Errorf("NewManager accepted a %d-byte KEK", len(kek))
		}
	}
}

func TestJWKSMaxAgeBelowLead(t *testing.T) {
	for _, o := range []Options{
		{PublishLead: 24 * time.Hour, RefreshInterval: time.Minute},
		{PublishLead: 10 * time.Minute, RefreshInterval: time.Minute},
		{PublishLead: 2*time.Minute + time.Second, RefreshInterval: time.Minute},
	} {
		o.RetainRetired = time.Hour
		m := newManager(t, noStorage(), o)
		if age := m.JWKSMaxAge(); age+o.RefreshInterval >= o.PublishLead || age > time.Hour {
			t.Errorf("lead %s: JWKSMaxAge %s + refresh %s does not stay below the lead", o.PublishLead, age, o.RefreshInterval)
		}
	}
}

func TestSize3072(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		opts := testOptions(newClock())
		opts.Size = 3072
		m := loadedManager(t, storage.New(db), opts)
		infos, err := m.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].Bits != 3072 || m.snap.Load().active.priv.N.BitLen() != 3072 {
			t.Fatalf("List = %+v, want one 3072-bit key", infos)
		}
		tok, err := m.Sign([]byte("p"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Verify(tok); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStepStateRows checks the columns a promotion writes.
func TestStepStateRows(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		clock := newClock()
		m := loadedManager(t, storage.New(db), testOptions(clock))
		clock.Set(t0.Add(8 * time.Hour))
		m.Step(ctx)
		clock.Set(t0.Add(10*time.Hour + time.Second))
		if changed, err := m.Step(ctx); err != nil || !changed {
			t.Fatalf("promotion step: %v, %v", changed, err)
		}
		rows := checkTable(t, storage.New(db))
		retired, promoted := rows[0], rows[1]
		if retired.State != StateRetired || retired.RetiredAt == nil || !retired.RetiredAt.Equal(t0.Add(10*time.Hour+time.Second)) {
			t.Errorf("retired row = %v", retired)
		}
		if promoted.ActivatedAt == nil || !promoted.ActivatedAt.Equal(t0.Add(10*time.Hour+time.Second)) || !promoted.ActivatesAt.Equal(t0.Add(10*time.Hour)) {
			t.Errorf("promoted row = %v", promoted)
		}
	})
}
