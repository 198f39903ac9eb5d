package password

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"idp/budget"
)

// testParams is the cheapest parameter set Validate accepts (OWASP's floor),
// so that tests stay fast; one hash takes about 25 ms.
func testParams() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

func newTestHasher(t testing.TB, p Params, concurrency int, queueTimeout time.Duration) *Hasher {
	t.Helper()
	h, err := NewHasher(p, concurrency, queueTimeout)
	if err != nil {
		t.Fatalf("NewHasher(%+v): %v", p, err)
	}
	return h
}

func TestDefaultParams(t *testing.T) {
	p := DefaultParams()
	want := Params{Memory: 65536, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	if p != want {
		t.Fatalf("DefaultParams() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultParams().Validate(): %v", err)
	}
	h := newTestHasher(t, p, 1, time.Minute)
	encoded, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=65536,t=2,p=1$") {
		t.Errorf("Hash() = %q, want prefix $argon2id$v=19$m=65536,t=2,p=1$", encoded)
	}
	ok, rehash, err := h.Verify(context.Background(), encoded, "correct horse battery staple")
	if err != nil || !ok || rehash {
		t.Errorf("Verify(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestValidate(t *testing.T) {
	valid := testParams()
	with := func(f func(*Params)) Params {
		p := valid
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		p     Params
		field string // "" means valid
	}{
		{"floor", valid, ""},
		{"default", DefaultParams(), ""},
		{"one iteration with 46 MiB", with(func(p *Params) { p.Memory, p.Iterations = 46*1024, 1 }), ""},
		{"4 GiB", with(func(p *Params) { p.Memory = 4 * 1024 * 1024 }), ""},
		{"memory below floor", with(func(p *Params) { p.Memory = 19*1024 - 1 }), "Memory"},
		{"memory above 4 GiB", with(func(p *Params) { p.Memory = 4*1024*1024 + 1 }), "Memory"},
		{"zero iterations", with(func(p *Params) { p.Iterations = 0 }), "Iterations"},
		{"too many iterations", with(func(p *Params) { p.Iterations = 65 }), "Iterations"},
		{"one iteration with 19 MiB", with(func(p *Params) { p.Iterations = 1 }), "Iterations"},
		{"one iteration just under 46 MiB", with(func(p *Params) { p.Memory, p.Iterations = 46*1024-1, 1 }), "Iterations"},
		{"zero parallelism", with(func(p *Params) { p.Parallelism = 0 }), "Parallelism"},
		{"short salt", with(func(p *Params) { p.SaltLength = 8 }), "SaltLength"},
		{"long salt", with(func(p *Params) { p.SaltLength = 65 }), "SaltLength"},
		{"zero key", with(func(p *Params) { p.KeyLength = 0 }), "KeyLength"},
		{"long key", with(func(p *Params) { p.KeyLength = 65 }), "KeyLength"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate(%+v) = %v, want nil", tt.p, err)
			case tt.field != "" && err == nil:
				t.Fatalf("Validate(%+v) = nil, want an error naming %s", tt.p, tt.field)
			case tt.field != "" && !strings.Contains(err.Error(), tt.field):
				t.Fatalf("Validate(%+v) = %q, want it to name %s", tt.p, err, tt.field)
			}
		})
	}

	err := Params{}.Validate()
	for _, field := range []string{"Memory", "Iterations", "Parallelism", "SaltLength", "KeyLength"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Params{}.Validate() = %v, want it to name %s", err, field)
		}
	}
	if _, err := NewHasher(Params{}, 1, time.Second); err == nil {
		t.Error("NewHasher(Params{}) succeeded, want the Validate error")
	}
}

func TestHashVerify(t *testing.T) {
	h := newTestHasher(t, testParams(), 2, time.Minute)
	ctx := context.Background()
	tests := []struct {
		name, password, attempt string
		want                    bool
	}{
		{"right", "hunter2 is my password", "hunter2 is my password", true},
		{"wrong", "hunter2 is my password", "hunter3 is my password", false},
		{"case matters", "Tr0ub4dor&3", "tr0ub4dor&3", false},
		{"prefix", "correct horse", "correct hors", false},
		{"empty right", "", "", true},
		{"empty wrong", "", "x", false},
		{"unicode", "pässwörd 密码 🔑", "pässwörd 密码 🔑", true},
		// No normalisation: NFC é (U+00E9) and NFD e + U+0301 differ.
		{"not normalised", "caf\u00e9", "cafe\u0301", false},
		{"nul byte kept", "a\x00b", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, err := h.Hash(ctx, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			ok, rehash, err := h.Verify(ctx, encoded, tt.attempt)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.want {
				t.Errorf("Verify(Hash(%q), %q) = %v, want %v", tt.password, tt.attempt, ok, tt.want)
			}
			if rehash {
				t.Error("needsRehash = true for a hash made with the hasher's own parameters")
			}
		})
	}
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func TestHashFormat(t *testing.T) {
	for _, p := range []Params{
		testParams(),
		{Memory: 24 * 1024, Iterations: 3, Parallelism: 2, SaltLength: 24, KeyLength: 64},
	} {
		h := newTestHasher(t, p, 1, time.Minute)
		encoded, err := h.Hash(context.Background(), "pw")
		if err != nil {
			t.Fatal(err)
		}
		m := phcPattern.FindStringSubmatch(encoded)
		if m == nil {
			t.Fatalf("Hash() = %q, not a PHC argon2id string", encoded)
		}
		for i, want := range []uint64{uint64(p.Memory), uint64(p.Iterations), uint64(p.Parallelism)} {
			if got, _ := strconv.ParseUint(m[i+1], 10, 32); got != want {
				t.Errorf("%q: parameter %d = %d, want %d", encoded, i, got, want)
			}
		}
		salt, err := base64.RawStdEncoding.DecodeString(m[4])
		if err != nil || uint32(len(salt)) != p.SaltLength {
			t.Errorf("%q: salt %q decodes to %d bytes (%v), want %d", encoded, m[4], len(salt), err, p.SaltLength)
		}
		key, err := base64.RawStdEncoding.DecodeString(m[5])
		if err != nil || uint32(len(key)) != p.KeyLength {
			t.Errorf("%q: hash %q decodes to %d bytes (%v), want %d", encoded, m[5], len(key), err, p.KeyLength)
		}

		parsed, err := parsePHC(encoded)
		if err != nil {
			t.Fatalf("parsePHC(%q): %v", encoded, err)
		}
		if !h.matches(parsed) {
			t.Errorf("parsePHC(%q) = %+v, does not match %+v", encoded, parsed, p)
		}
		if got := parsed.String(); got != encoded {
			t.Errorf("parsePHC(%q).String() = %q", encoded, got)
		}
	}
}

func TestHashesDiffer(t *testing.T) {
	h := newTestHasher(t, testParams(), 2, time.Minute)
	ctx := context.Background()
	a, err := h.Hash(ctx, "same password")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Hash(ctx, "same password")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of the same password are equal: %q", a)
	}
	pa, _ := parsePHC(a)
	pb, _ := parsePHC(b)
	if string(pa.salt) == string(pb.salt) {
		t.Errorf("two hashes share a salt: %q, %q", a, b)
	}
	for _, enc := range []string{a, b} {
		if ok, _, err := h.Verify(ctx, enc, "same password"); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", enc, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	base := testParams()
	with := func(f func(*Params)) Params {
		p := base
		f(&p)
		return p
	}
	ctx := context.Background()
	old := newTestHasher(t, base, 1, time.Minute)
	stored, err := old.Hash(ctx, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  Params
		want bool
	}{
		{"same", base, false},
		{"memory raised", with(func(p *Params) { p.Memory = 24 * 1024 }), true},
		{"iterations raised", with(func(p *Params) { p.Iterations = 3 }), true},
		{"parallelism changed", with(func(p *Params) { p.Parallelism = 2 }), true},
		{"salt length changed", with(func(p *Params) { p.SaltLength = 32 }), true},
		{"key length changed", with(func(p *Params) { p.KeyLength = 16 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHasher(t, tt.now, 1, time.Minute)
			ok, rehash, err := h.Verify(ctx, stored, "s3cret")
			if err != nil || !ok {
				t.Fatalf("Verify(right password) = %v, %v; want true, nil", ok, err)
			}
			if rehash != tt.want {
				t.Errorf("needsRehash = %v, want %v", rehash, tt.want)
			}
			// A wrong password never asks for a rehash, whatever the
			// parameters: the caller must not store a hash of a guess.
			ok, rehash, err = h.Verify(ctx, stored, "guess")
			if err != nil || ok || rehash {
				t.Errorf("Verify(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	b64 := base64.RawStdEncoding.EncodeToString
	salt := b64([]byte("0123456789abcdef"))                // 16 bytes
	key := b64([]byte("0123456789abcdef0123456789abcdef")) // 32 bytes
	good := "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key
	withCosts := func(c string) string { return "$argon2id$v=19$" + c + "$" + salt + "$" + key }
	withSalt := func(s string) string { return "$argon2id$v=19$m=19456,t=2,p=1$" + s + "$" + key }
	withKey := func(k string) string { return "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + k }

	h := newTestHasher(t, testParams(), 1, time.Minute)
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("the well-formed base case %q does not parse: %v", good, err)
	}
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "not a hash"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"argon2d", strings.Replace(good, "argon2id", "argon2d", 1)},
		{"upper-case algorithm", strings.Replace(good, "argon2id", "ARGON2ID", 1)},
		{"bcrypt", "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"version 16", strings.Replace(good, "v=19", "v=16", 1)},
		{"version 20", strings.Replace(good, "v=19", "v=20", 1)},
		{"missing version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"missing parameters", "$argon2id$v=19$" + salt + "$" + key},
		{"missing hash", "$argon2id$v=19$m=19456,t=2,p=1$" + salt},
		{"missing salt and hash", "$argon2id$v=19$m=19456,t=2,p=1"},
		{"trailing dollar", good + "$"},
		{"extra field", good + "$" + key},
		{"no leading dollar", good[1:]},
		{"leading space", " " + good},
		{"trailing newline", good + "\n"},
		{"missing memory", withCosts("t=2,p=1")},
		{"parameters reordered", withCosts("t=2,m=19456,p=1")},
		{"extra parameter", withCosts("m=19456,t=2,p=1,keyid=abc")},
		{"space in parameters", withCosts("m=19456, t=2,p=1")},
		{"empty memory", withCosts("m=,t=2,p=1")},
		{"hex memory", withCosts("m=0x4c00,t=2,p=1")},
		{"leading zero", withCosts("m=019456,t=2,p=1")},
		{"plus sign", withCosts("m=+19456,t=2,p=1")},
		{"negative iterations", withCosts("m=19456,t=-1,p=1")},
		{"memory over 4 GiB", withCosts("m=4194305,t=2,p=1")},
		{"memory over uint32", withCosts("m=4294967296,t=2,p=1")},
		{"memory over uint64", withCosts("m=99999999999999999999999,t=2,p=1")},
		{"zero memory", withCosts("m=0,t=2,p=1")},
		{"memory under 8 KiB per lane", withCosts("m=15,t=2,p=2")},
		{"zero iterations", withCosts("m=19456,t=0,p=1")},
		{"huge iterations", withCosts("m=19456,t=4294967295,p=1")},
		{"zero parallelism", withCosts("m=19456,t=2,p=0")},
		{"parallelism over 255", withCosts("m=19456,t=2,p=256")},
		{"salt not base64", withSalt("!!!!!!!!!!!!!!!!!!!!!!")},
		{"salt padded", withSalt(salt + "==")},
		{"salt url alphabet", withSalt(strings.Repeat("-", 22))},
		{"salt with newline", withSalt(salt[:10] + "\n" + salt[10:])},
		{"salt non-canonical last char", withSalt(salt[:21] + "h")},
		{"salt empty", withSalt("")},
		{"salt too short", withSalt(b64([]byte("1234567")))},
		{"salt too long", withSalt(b64(make([]byte, 65)))},
		{"hash not base64", withKey(strings.Repeat("*", 43))},
		{"hash empty (key length 0)", withKey("")},
		{"hash too short", withKey(b64(make([]byte, 15)))},
		{"hash too long", withKey(b64(make([]byte, 129)))},
		{"too long overall", withKey(strings.Repeat("A", 600))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), tt.encoded, "password")
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Verify(%q) error = %v, want ErrMalformedHash", tt.encoded, err)
			}
			if ok || rehash {
				t.Errorf("Verify(%q) = %v, %v with an error", tt.encoded, ok, rehash)
			}
		})
	}
	if n := cap(h.slots) - len(h.slots); n != 0 {
		t.Errorf("%d slots still held after malformed hashes", n)
	}
}

func TestBusy(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, testParams(), 1, time.Millisecond)
	stored, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}

	// Hold the only slot, as a running Hash does.
	_, release, err := h.acquire(ctx, testParams().Memory)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with every slot taken: err = %v, want ErrBusy", err)
	}
	if _, _, err := h.Verify(ctx, stored, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Verify with every slot taken: err = %v, want ErrBusy", err)
	}
	if err := h.VerifyDummy(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("VerifyDummy with every slot taken: err = %v, want ErrBusy", err)
	}
	// A malformed hash is reported as such, not as busy: parsing needs no slot.
	if _, _, err := h.Verify(ctx, "garbage", "pw"); !errors.Is(err, ErrMalformedHash) {
		t.Errorf("Verify(garbage) with every slot taken: err = %v, want ErrMalformedHash", err)
	}
	release()

	// The slot is free again, and nothing leaked from the refused calls.
	if ok, _, err := h.Verify(ctx, stored, "pw"); !ok || err != nil {
		t.Errorf("Verify after release = %v, %v; want true, nil", ok, err)
	}
	if n := cap(h.slots) - len(h.slots); n != 0 {
		t.Errorf("%d slots held after every call returned", n)
	}
}

func TestBusyNoQueue(t *testing.T) {
	h := newTestHasher(t, testParams(), 1, 0)
	_, release, err := h.acquire(context.Background(), testParams().Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := h.Hash(context.Background(), "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("queueTimeout 0, slot taken: err = %v, want ErrBusy", err)
	}
}

func TestBusyCancelled(t *testing.T) {
	h := newTestHasher(t, testParams(), 2, time.Hour)
	stored, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	// Slots are free, but the caller has gone: don't spend 25 ms on it.
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("Hash(cancelled ctx): err = %v, want ErrBusy and context.Canceled", err)
	}
	if _, _, err := h.Verify(ctx, stored, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Verify(cancelled ctx): err = %v, want ErrBusy", err)
	}
	if err := h.VerifyDummy(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("VerifyDummy(cancelled ctx): err = %v, want ErrBusy", err)
	}
}

func TestBusyCancelledWhileWaiting(t *testing.T) {
	h := newTestHasher(t, testParams(), 1, time.Hour)
	_, release, err := h.acquire(context.Background(), testParams().Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := h.Hash(ctx, "pw")
		done <- err
	}()
	cancel() // before or during the wait: either way the caller gives up
	if err := <-done; !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("Hash cancelled while queued: err = %v, want ErrBusy and context.Canceled", err)
	}
}

func TestWaiterGetsReleasedSlot(t *testing.T) {
	h := newTestHasher(t, testParams(), 1, time.Hour)
	_, release, err := h.acquire(context.Background(), testParams().Memory)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "pw")
		done <- err
	}()
	release()
	if err := <-done; err != nil {
		t.Errorf("queued Hash after the slot was released: %v", err)
	}
}

func TestHasherAccessors(t *testing.T) {
	p := testParams()
	h := newTestHasher(t, p, 0, time.Second)
	if got, want := h.Concurrency(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("Concurrency() with 0 = %d, want GOMAXPROCS %d", got, want)
	}
	h = newTestHasher(t, p, 3, time.Second)
	if got := h.Concurrency(); got != 3 {
		t.Errorf("Concurrency() = %d, want 3", got)
	}
	if got, want := h.MemoryBudget(), int64(3*19*1024*1024); got != want {
		t.Errorf("MemoryBudget() = %d, want %d", got, want)
	}
	if got := h.Params(); got != p {
		t.Errorf("Params() = %+v, want %+v", got, p)
	}
	// Built by hand: NewHasher would compute a 4 GiB dummy hash.
	big := &Hasher{params: Params{Memory: 4 * 1024 * 1024}, slots: make(chan *slot, 64)}
	if got, want := big.MemoryBudget(), int64(64)<<32; got != want {
		t.Errorf("MemoryBudget() for 64 × 4 GiB = %d, want %d (no overflow)", got, want)
	}
}

func TestVerifyDummy(t *testing.T) {
	h := newTestHasher(t, testParams(), 1, time.Minute)
	// The dummy must cost what a real hash costs: same parameters.
	dummy, err := parsePHC(h.dummy)
	if err != nil {
		t.Fatalf("dummy hash %q: %v", h.dummy, err)
	}
	if !h.matches(dummy) {
		t.Errorf("dummy hash %q does not use the hasher's parameters %+v", h.dummy, h.params)
	}
	for _, pw := range []string{"", "password", "anything at all"} {
		if err := h.VerifyDummy(context.Background(), pw); err != nil {
			t.Errorf("VerifyDummy(%q): %v", pw, err)
		}
	}
	other := newTestHasher(t, testParams(), 1, time.Minute)
	if h.dummy == other.dummy {
		t.Error("two hashers share a dummy hash: its salt is not random")
	}
}

func TestIsCommon(t *testing.T) {
	random := rand.Text()[:20]
	tests := []struct {
		password string
		want     bool
	}{
		{"password", true},
		{"PASSWORD", true},
		{"Password", true},
		{"123456", true},
		{"qwerty", true},
		{"QwErTy", true},
		{"iloveyou", true},
		{"trustno1", true},
		{"eyphed", true}, // the last entry
		{random, false},
		{strings.ToLower(random), false},
		{"", false},
		{"password ", false},
		{" password", false},
		{"correct horse battery staple", false},
		// A common password with digits and punctuation around it.
		{"password1234", true},
		{"Qwerty123456", true},
		{"!!iloveyou2024", true},
		{"dragon.1987.", true},
		{"1234567890", true}, // listed as it is
		{"p4ssword1234", false},
		{"password1234x", false},
		{"horse battery 1234", false},
		// Repeated or consecutive characters.
		{"aaaaaaaaaaaa", true},
		{"abcabcabcabc", true},
		{"abcdabcdabcd", true},
		{"123456789012", true},
		{"zyxwvutsrqpo", true},
		{"098765432109", true},
		{"abcdeabcdeab", false},
		{"aaaaaaaaaaab", false},
		{"ab", false},
		{"a", false},
	}
	for _, tt := range tests {
		if got := IsCommon(tt.password); got != tt.want {
			t.Errorf("IsCommon(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
}

func TestCommonListSize(t *testing.T) {
	set := commonPasswords()
	if n := len(set); n < 10000 {
		t.Fatalf("common-password set has %d entries, want at least 10000", n)
	}
	for line := range strings.Lines(commonPasswordsText) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			t.Fatal("common-passwords.txt has an empty line")
		}
		if !IsCommon(line) {
			t.Errorf("IsCommon(%q) = false for an entry of the list", line)
		}
	}
}

// FuzzVerify feeds arbitrary strings to Verify as stored hashes: it must
// never panic, must reject with ErrMalformedHash whatever it cannot parse, and
// must accept only the canonical spelling of a hash.
func FuzzVerify(f *testing.F) {
	h := newTestHasher(f, testParams(), 1, time.Minute)
	good, err := h.Hash(context.Background(), "pw")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		good,
		h.dummy,
		"",
		"$",
		"$$$$$",
		"$argon2id$v=19$m=19456,t=2,p=1$$",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
		"$argon2id$v=19$m=4194305,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=0,p=0$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	} {
		f.Add(seed, "pw")
	}
	f.Fuzz(func(t *testing.T, encoded, password string) {
		parsed, perr := parsePHC(encoded)
		if perr == nil {
			if got := parsed.String(); got != encoded {
				t.Fatalf("parsePHC(%q) accepted a non-canonical spelling of %q", encoded, got)
			}
			// Well-formed but expensive hashes (up to 4 GiB × 64 passes)
			// are legal; computing them would only stall the fuzzer.
			if uint64(parsed.memory)*uint64(parsed.iterations) > 4*64*1024 {
				return
			}
		}
		ok, rehash, err := h.Verify(context.Background(), encoded, password)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Verify(%q) error = %v, but parsePHC error = %v", encoded, err, perr)
		}
		if err != nil && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("Verify(%q) error = %v, want ErrMalformedHash", encoded, err)
		}
		if err != nil && (ok || rehash) {
			t.Fatalf("Verify(%q) = %v, %v with error %v", encoded, ok, rehash, err)
		}
		if encoded == good && ok != (password == "pw") {
			t.Fatalf("Verify(good, %q) = %v", password, ok)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	h := newTestHasher(b, DefaultParams(), 0, time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(context.Background(), "correct horse battery staple"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

func BenchmarkVerifyDummy(b *testing.B) {
	h := newTestHasher(b, DefaultParams(), 1, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if err := h.VerifyDummy(context.Background(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/verify")
}

// TestHashSharesTheBudget: with the shared budget held by another operation
// (a picture decode), a hash has a free slot but no memory, so it waits and
// then is busy; once the memory is given back within its wait, it runs; and
// a hash that runs holds its argon2 memory of the budget, which another
// operation then cannot have.
func TestHashSharesTheBudget(t *testing.T) {
	ctx := context.Background()
	p := testParams()
	mem := budget.New(MemoryBudget(p, 2))
	h, err := NewHasher(p, 2, 100*time.Millisecond, WithBudget(mem))
	if err != nil {
		t.Fatal(err)
	}

	decode, err := mem.Acquire(ctx, mem.Size(), 0) // a decode holds it all
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with the budget held: err = %v, want ErrBusy", err)
	}
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("Hash gave up after %v: it did not wait its queue timeout", took)
	}
	if n := cap(h.slots) - len(h.slots); n != 0 {
		t.Errorf("%d slots held after a refused hash", n)
	}
	time.AfterFunc(30*time.Millisecond, decode)
	if _, err := h.Hash(ctx, "pw"); err != nil {
		t.Fatalf("Hash once the decode gave the memory back: %v", err)
	}

	// Two running hashes fill the budget: a decode waits, then is busy.
	_, r1, err := h.acquire(ctx, p.Memory)
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := h.acquire(ctx, p.Memory)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := mem.Acquire(ctx, 1, 50*time.Millisecond); !errors.Is(err, budget.ErrBusy) {
		t.Fatalf("decode with hashes holding the budget: err = %v, want busy", err)
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("the decode gave up after %v without waiting", took)
	}
	r1()
	r2()
	release, err := mem.Acquire(ctx, mem.Size(), 0)
	if err != nil {
		t.Fatalf("after the hashes: the budget is not whole again: %v", err)
	}
	release()
}

// peekSlot returns the slot a Hasher of concurrency 1 holds, leaving it.
func peekSlot(t *testing.T, h *Hasher) slot {
	t.Helper()
	sl := <-h.slots
	defer func() { h.slots <- sl }()
	return *sl
}

// TestKeptBufferHoldsItsBytes: a slot that keeps its buffer between hashes
// keeps its bytes of the shared budget, so that the budget counts the memory
// the buffer occupies; an operation short of bytes gets them at once from a
// slot not in use (its buffer is dropped), and the next hash then needs the
// bytes again.
func TestKeptBufferHoldsItsBytes(t *testing.T) {
	ctx := context.Background()
	p := testParams()
	mem := budget.New(MemoryBudget(p, 1))
	h, err := NewHasher(p, 1, 100*time.Millisecond, WithBudget(mem))
	if err != nil {
		t.Fatal(err)
	}
	if sl := peekSlot(t, h); sl.held != nil {
		t.Fatal("a slot holds bytes before the first hash")
	}
	if _, err := h.Hash(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	kept := peekSlot(t, h)
	if kept.held == nil || kept.heldKiB != p.Memory {
		t.Fatalf("after a hash the kept buffer holds %d KiB of the budget, want %d", kept.heldKiB, p.Memory)
	}

	decode, err := mem.Acquire(ctx, mem.Size(), 0) // a decode needs it all, now
	if err != nil {
		t.Fatalf("a decode with the budget in an idle slot's buffer: %v", err)
	}
	if sl := peekSlot(t, h); sl.held != nil || sl.mem == kept.mem {
		t.Fatal("the idle slot kept its buffer and bytes for the decode")
	}
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a hash while the decode holds the budget: %v, want ErrBusy", err)
	}
	decode()
	if _, err := h.Hash(ctx, "pw"); err != nil {
		t.Fatalf("a hash once the decode is done: %v", err)
	}
}

// TestRunningHashGivesBytesToAWaiter: when an operation waits for bytes of
// the budget, a hash that ends gives its buffer's bytes back at once instead
// of keeping them for the next hash.
func TestRunningHashGivesBytesToAWaiter(t *testing.T) {
	ctx := context.Background()
	p := testParams()
	mem := budget.New(MemoryBudget(p, 1))
	h, err := NewHasher(p, 1, time.Second, WithBudget(mem))
	if err != nil {
		t.Fatal(err)
	}
	_, done, err := h.acquire(ctx, p.Memory) // a hash runs
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		release, err := mem.Acquire(ctx, mem.Size(), 5*time.Second)
		if err == nil {
			release()
		}
		got <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); !mem.Contended(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the decode never waited")
		}
	}
	done()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the waiting decode: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the hash kept its bytes while a decode waited for them")
	}
	if sl := peekSlot(t, h); sl.held != nil {
		t.Error("the slot still holds bytes it gave to the decode")
	}
}
