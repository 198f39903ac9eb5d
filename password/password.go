// Package password hashes and verifies user passwords with argon2id and
// knows which passwords are too common to accept at signup.
//
// Hashes are PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash), the format
// other argon2 libraries read, so stored hashes outlive this package. Each
// hash holds Params.Memory KiB while it runs, so a Hasher caps how many run
// at once: a login flood then queues and is turned away with ErrBusy instead
// of exhausting the process's memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"idp/budget"
	"idp/password/internal/argon2"
)

// ErrBusy means every hashing slot stayed taken for the whole queue timeout,
// or the shared memory budget had no room for the hash that long, or the
// caller's context ended while it waited. Callers answer 503 /
// temporarily_unavailable: the password was not checked.
var ErrBusy = errors.New("password: hashing capacity exhausted, try again later")

// ErrMalformedHash means a stored hash is not an argon2id PHC string this
// package can verify, or names parameters too absurd to compute.
var ErrMalformedHash = errors.New("password: malformed hash")

// Params are argon2id parameters. Memory is in KiB.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes
}

// Bounds on Params. The minimums are the OWASP Password Storage Cheat Sheet
// floor for argon2id: 19 MiB with two iterations, or 46 MiB with one (the
// same cost, memory traded for time). The maximums only catch mistakes.
const (
	minMemory        = 19 * 1024       // KiB, with at least minIterations
	minMemoryOneIter = 46 * 1024       // KiB, when Iterations == 1
	maxMemory        = 4 * 1024 * 1024 // KiB (4 GiB)
	minIterations    = 2               // with minMemory
	maxIterations    = 64
	minSaltLength    = 16 // bytes; RFC 9106 recommends 128-bit salts
	maxSaltLength    = 64
	minKeyLength     = 16
	maxKeyLength     = 64
)

// Bounds on stored hashes. A stored hash may predate the current policy
// (weaker parameters still verify, and are then re-hashed), but it must not
// make Verify allocate or spin without bound, nor make argon2 panic.
const (
	maxEncodedLength   = 512
	minStoredSaltBytes = 8 // RFC 9106's minimum
	maxStoredSaltBytes = 64
	minStoredKeyBytes  = 16
	maxStoredKeyBytes  = 128
)

// DefaultParams are the parameters idp hashes new passwords with: 64 MiB,
// two passes, one lane, stronger than OWASP's minimum (19 MiB, t=2, p=1).
//
// Measured on the 2-core AMD EPYC development machine (go1.26,
// x/crypto v0.58.0, other jobs sharing the CPUs): one hash takes 75–100 ms
// at t=2 (about 40 ms at t=1), well under the 250 ms a login may spend on it,
// so t=2 stays. With p=1 each hash uses one core; both cores together do
// about 10–17 hashes/s (BenchmarkHash), which is the login rate past which
// callers queue and then get ErrBusy.
func DefaultParams() Params {
	return Params{
		Memory:      64 * 1024,
		Iterations:  2,
		Parallelism: 1,
		SaltLength:  16,
		KeyLength:   32,
	}
}

// Validate reports whether p is strong enough to hash new passwords with
// (the OWASP floor) and small enough to be a deliberate choice.
func (p Params) Validate() error {
	var errs []error
	switch {
	case p.Memory < minMemory:
		errs = append(errs, fmt.Errorf("Memory %d KiB is below the minimum of %d KiB", p.Memory, minMemory))
	case p.Memory > maxMemory:
		errs = append(errs, fmt.Errorf("Memory %d KiB is above the maximum of %d KiB (4 GiB)", p.Memory, maxMemory))
	}
	switch {
	case p.Iterations < 1:
		errs = append(errs, errors.New("Iterations must be at least 1"))
	case p.Iterations > maxIterations:
		errs = append(errs, fmt.Errorf("Iterations %d is above the maximum of %d", p.Iterations, maxIterations))
	case p.Iterations < minIterations && p.Memory >= minMemory && p.Memory < minMemoryOneIter:
		errs = append(errs, fmt.Errorf("Iterations 1 needs Memory of at least %d KiB (got %d KiB); use Iterations >= %d for less memory",
			minMemoryOneIter, p.Memory, minIterations))
	}
	if p.Parallelism < 1 {
		errs = append(errs, errors.New("Parallelism must be at least 1"))
	}
	if p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength {
		errs = append(errs, fmt.Errorf("SaltLength %d is outside %d..%d bytes", p.SaltLength, minSaltLength, maxSaltLength))
	}
	if p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength {
		errs = append(errs, fmt.Errorf("KeyLength %d is outside %d..%d bytes", p.KeyLength, minKeyLength, maxKeyLength))
	}
	if len(errs) > 0 {
		return fmt.Errorf("password: invalid argon2id parameters: %w", errors.Join(errs...))
	}
	return nil
}

// idleRelease is how long the Hasher goes without a hash before it drops its
// slots' argon2 buffers. Logins that keep coming (a few a minute or more)
// keep the buffers, and with them the speed of not allocating and faulting
// in Memory KiB per hash; a server nobody logs in to holds none of it. The
// first hash after an idle period pays the allocation once (a few ms at
// 64 MiB), unknown user and wrong password alike.
const idleRelease = 30 * time.Second

// Hasher hashes and verifies passwords with fixed parameters, running at most
// Concurrency hashes at once. It is safe for concurrent use.
type Hasher struct {
	params Params
	// slots holds the working memory of each hash that may run at once;
	// taking one is taking a slot. Kept from hash to hash while hashes keep
	// coming, it bounds the memory at Concurrency × Memory and spares the
	// allocation, the page faults and the garbage of a fresh block per
	// hash; after idle without a hash the buffers are dropped (release).
	slots        chan *slot
	queueTimeout time.Duration
	// memory, when set, is the budget each slot's buffer takes its bytes
	// from, shared with the other expensive operations: while the hash
	// runs and, as long as the buffer is kept, between hashes.
	memory *budget.Budget
	dummy  string // a real hash with params, for VerifyDummy

	idle time.Duration // idleRelease, shorter in tests
	// mu guards the fields below. Every caller of acquire counts in
	// active from before it looks for a slot until it gives the slot back
	// (or gives up), so that release, which drops buffers only when active
	// is 0, never takes a slot from the channel while a caller could find
	// it empty and be turned away.
	mu     sync.Mutex
	active int
	warm   bool      // some slot may hold a buffer
	quiet  time.Time // when active last fell to 0
	timer  *time.Timer
	// freeOS returns freed memory to the operating system; nil in tests
	// that count allocations.
	freeOS func()
}

// slot is one hash's working memory and the budget's bytes it holds.
type slot struct {
	mem *argon2.Memory
	// held gives back the budget's bytes reserved for mem, heldKiB of
	// them; nil when none are (no budget, or the buffer was dropped).
	held    func()
	heldKiB uint32
}

// drop lets the slot's buffer go and gives its bytes back to the budget.
func (s *slot) drop() {
	s.mem = new(argon2.Memory)
	if s.held != nil {
		s.held()
		s.held, s.heldKiB = nil, 0
	}
}

// Option configures NewHasher.
type Option func(*Hasher)

// WithRelease sets what returns memory to the operating system once the
// Hasher has dropped its buffers, after the dummy hash and after each idle
// period: debug.FreeOSMemory by default. A server passes something that
// also trims what else it holds while idle (residency.Trim).
func WithRelease(release func()) Option {
	return func(h *Hasher) { h.freeOS = release }
}

// WithBudget makes every hash take its argon2 memory from b, after it has a
// slot, within the same queue timeout. b is usually shared with picture
// decoding and sized MemoryBudget(p, concurrency), so that hashes alone can
// fill it and a flood of either cannot exceed it. A slot keeps its buffer's
// bytes between hashes, for as long as it keeps the buffer, so that the
// budget counts the memory the buffers occupy; it gives them back when
// another operation is short of bytes (the buffer of a slot not in use at
// once, that of a running hash when it ends) and when idle.
func WithBudget(b *budget.Budget) Option {
	return func(h *Hasher) { h.memory = b }
}

// NewHasher returns a Hasher for p. concurrency caps how many hashes run at
// once (each holds p.Memory KiB), so that a login flood cannot exhaust
// memory; concurrency <= 0 means runtime.GOMAXPROCS(0), which with
// Parallelism 1 keeps every core busy and no more. A caller that cannot get a
// slot within queueTimeout gets ErrBusy; queueTimeout <= 0 means callers never
// wait.
//
// NewHasher computes one hash (for VerifyDummy), so it takes as long as a
// login, in memory it drops at once.
//
// The slots' buffers are allocated by the hashes that need them and dropped
// after 30 seconds without a hash; the Hasher then returns the freed memory
// to the operating system (debug.FreeOSMemory). That needs no goroutine
// between hashes (a timer, armed when the last hash ends) and no Close.
func NewHasher(p Params, concurrency int, queueTimeout time.Duration, opts ...Option) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{
		params:       p,
		slots:        make(chan *slot, concurrency),
		queueTimeout: queueTimeout,
		idle:         idleRelease,
		freeOS:       debug.FreeOSMemory,
	}
	for _, o := range opts {
		o(h)
	}
	for range concurrency {
		h.slots <- &slot{mem: new(argon2.Memory)}
	}
	if h.memory != nil {
		h.memory.Cache(h.shed)
	}
	h.timer = time.AfterFunc(h.idle, h.release)
	h.timer.Stop()
	// The dummy's password is random and thrown away: nothing can match it,
	// and VerifyDummy's answer is ignored anyway. It is computed in fresh
	// memory, not a slot's, so that no buffer is held before the first
	// login; VerifyDummy still costs what a wrong password costs, since it
	// runs in a slot like Verify. Returning the block to the system here
	// rather than at the next collection keeps a server that nobody has
	// logged in to small from its start (one collection, at start-up).
	h.dummy = h.compute(nil, rand.Text()).String()
	if h.freeOS != nil {
		h.freeOS()
	}
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Concurrency returns how many hashes may run at once.
func (h *Hasher) Concurrency() int { return cap(h.slots) }

// MemoryBudget is Concurrency × Memory in bytes: the most memory hashing can
// hold at once. It assumes stored hashes use no more memory than Params (true
// unless Memory was lowered since they were made), and the Go heap may grow
// past it until the garbage collector returns freed hashes' memory: size
// GOMEMLIMIT with that in mind.
func (h *Hasher) MemoryBudget() int64 {
	return MemoryBudget(h.params, cap(h.slots))
}

// MemoryBudget is what Hasher.MemoryBudget would be for a Hasher of p and
// concurrency (<= 0: runtime.GOMAXPROCS(0)), so that a budget to share can
// be sized before the Hasher that uses it is made.
func MemoryBudget(p Params, concurrency int) int64 {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return int64(concurrency) * int64(p.Memory) * 1024
}

// Hash returns the PHC string for password, with a fresh random salt:
//
//	$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64.
//
// The password is hashed as the raw UTF-8 bytes of the string, with no
// Unicode normalisation: "é" typed as one code point and as e + combining
// accent are different passwords. Whether to normalise (NIST SP 800-63B
// suggests NFKC) is the caller's decision, made once for Hash and Verify
// alike, because changing it later locks out every user hashed under the old
// rule.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	mem, release, err := h.acquire(ctx, h.params.Memory)
	if err != nil {
		return "", err
	}
	defer release()
	return h.compute(mem, password).String(), nil
}

// Verify checks password against encoded, a PHC string made by Hash, comparing
// the hashes in constant time. needsRehash is true when the password matched
// and encoded was made with other parameters than the Hasher's (including salt
// and key length): the caller then stores Hash(password) after the successful
// login. It is never true for a wrong password, so a caller cannot replace a
// user's hash with one of a wrong guess.
//
// A malformed or absurd encoded gives an error wrapping ErrMalformedHash.
// When no hashing slot frees up in time, the error wraps ErrBusy.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (ok bool, needsRehash bool, err error) {
	stored, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	mem, release, err := h.acquire(ctx, stored.memory)
	if err != nil {
		return false, false, err
	}
	defer release()
	got := mem.IDKey([]byte(password), stored.salt, stored.iterations, stored.memory, stored.parallelism, uint32(len(stored.key)))
	if subtle.ConstantTimeCompare(got, stored.key) != 1 {
		return false, false, nil
	}
	return true, !h.matches(stored), nil
}

// VerifyDummy spends the same time as Verify against a real hash with the
// Hasher's parameters, so that a login for an unknown user takes as long as
// one with a wrong password and does not reveal which accounts exist. It
// always fails; the only error it returns wraps ErrBusy.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, h.dummy, password)
	return err
}

// acquire takes a hashing slot and its memory, then memoryKiB from the
// shared budget if there is one, waiting at most queueTimeout in all and no
// longer than ctx allows. The returned func gives both back.
func (h *Hasher) acquire(ctx context.Context, memoryKiB uint32) (*argon2.Memory, func(), error) {
	// A caller whose context has ended has gone: spend no hash on it, even
	// with a slot free.
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	start := time.Now()
	h.enter()
	var sl *slot
	select {
	case sl = <-h.slots:
	default:
		if h.queueTimeout <= 0 {
			h.leave()
			return nil, nil, ErrBusy
		}
		timer := time.NewTimer(h.queueTimeout)
		defer timer.Stop()
		select {
		case sl = <-h.slots:
		case <-timer.C:
			h.leave()
			return nil, nil, ErrBusy
		case <-ctx.Done():
			h.leave()
			return nil, nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
		}
	}
	giveSlot := func() { h.slots <- sl; h.leave() }
	if h.memory == nil {
		return sl.mem, giveSlot, nil
	}
	if sl.held == nil || sl.heldKiB < memoryKiB {
		sl.drop() // a smaller reservation: its buffer cannot hold this hash
		wait := h.queueTimeout - time.Since(start)
		if h.queueTimeout <= 0 {
			wait = 0
		}
		give, err := h.memory.Acquire(ctx, int64(memoryKiB)*1024, wait)
		if err != nil {
			giveSlot()
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
			}
			return nil, nil, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		sl.held, sl.heldKiB = give, memoryKiB
	}
	return sl.mem, func() {
		if h.memory.Contended() {
			// Someone waits for the bytes: they go now, not when idle,
			// announced as garbage before the waiter can have them.
			h.memory.Discarded()
			sl.drop()
		}
		giveSlot()
	}, nil
}

// shed drops the buffers of the slots not in use, giving their bytes back
// to the budget; the budget calls it when an operation is short of bytes.
// The slots are out of the channel for a moment: a hash arriving then waits
// for them like for any slot in use (and, with no queue timeout, is busy).
func (h *Hasher) shed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	var idle []*slot
take:
	for range cap(h.slots) {
		select {
		case sl := <-h.slots:
			idle = append(idle, sl)
		default:
			break take
		}
	}
	for _, sl := range idle {
		if sl.held != nil {
			h.memory.Discarded()
			sl.drop()
		}
		h.slots <- sl
	}
}

// enter counts a caller of acquire as active: from then on its slot's
// buffer, and every other, stays.
func (h *Hasher) enter() {
	h.mu.Lock()
	h.active++
	h.warm = true
	h.mu.Unlock()
}

// leave ends what enter began. The last caller to leave arms the idle timer.
func (h *Hasher) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.active--
	if h.active == 0 {
		h.quiet = time.Now()
		h.timer.Reset(h.idle)
	}
}

// release drops every slot's buffer when no hash has run for h.idle. It runs
// on the idle timer; a firing that a later hash has overtaken (the timer
// was re-armed while this one started) finds the Hasher active or not yet
// quiet for long enough and leaves the buffers to the next firing.
func (h *Hasher) release() {
	h.mu.Lock()
	if h.active > 0 || !h.warm || time.Since(h.quiet) < h.idle {
		h.mu.Unlock()
		return
	}
	// No caller is in acquire (active is 0, and a new one waits for mu
	// before it looks for a slot), so every slot is in the channel.
	for range cap(h.slots) {
		sl := <-h.slots
		sl.drop()
		h.slots <- sl
	}
	h.warm = false
	h.mu.Unlock()
	// The Go runtime returns freed heap to the system only gradually (its
	// scavenger paces itself to a few percent of a CPU), so the
	// Concurrency × Memory just dropped would stay resident for minutes.
	// One forced collection per idle period, when nothing is hashing, is
	// cheap next to the hashes that came before it.
	if h.freeOS != nil {
		h.freeOS()
	}
}

// compute hashes password with a fresh salt and the Hasher's parameters, in
// mem (nil: fresh memory). It takes no slot: callers do.
func (h *Hasher) compute(mem *argon2.Memory, password string) phc {
	p := h.params
	salt := make([]byte, p.SaltLength)
	rand.Read(salt) // never fails: since Go 1.24 it crashes rather than return an error
	return phc{
		memory:      p.Memory,
		iterations:  p.Iterations,
		parallelism: p.Parallelism,
		salt:        salt,
		key:         mem.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength),
	}
}

// matches reports whether stored was made with the Hasher's parameters.
func (h *Hasher) matches(stored phc) bool {
	p := h.params
	return stored.memory == p.Memory &&
		stored.iterations == p.Iterations &&
		stored.parallelism == p.Parallelism &&
		uint32(len(stored.salt)) == p.SaltLength &&
		uint32(len(stored.key)) == p.KeyLength
}

// phc is a parsed argon2id PHC string.
type phc struct {
	memory      uint32
	iterations  uint32
	parallelism uint8
	salt, key   []byte
}

var b64 = base64.RawStdEncoding.Strict()

func (c phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, c.memory, c.iterations, c.parallelism,
		b64.EncodeToString(c.salt), b64.EncodeToString(c.key))
}

// parsePHC parses an argon2id PHC string strictly: one spelling per hash, so
// that what parses is exactly what String writes back.
func parsePHC(encoded string) (phc, error) {
	if len(encoded) > maxEncodedLength {
		return phc{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHash, maxEncodedLength)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return phc{}, fmt.Errorf("%w: want $argon2id$v=19$m=…,t=…,p=…$salt$hash", ErrMalformedHash)
	}
	if fields[1] != "argon2id" {
		return phc{}, fmt.Errorf("%w: algorithm %q, want argon2id", ErrMalformedHash, fields[1])
	}
	if want := "v=" + strconv.Itoa(argon2.Version); fields[2] != want {
		return phc{}, fmt.Errorf("%w: version %q, want %q", ErrMalformedHash, fields[2], want)
	}
	var c phc
	var err error
	if c.memory, c.iterations, c.parallelism, err = parseCosts(fields[3]); err != nil {
		return phc{}, err
	}
	if c.salt, err = decodeB64(fields[4], "salt", minStoredSaltBytes, maxStoredSaltBytes); err != nil {
		return phc{}, err
	}
	if c.key, err = decodeB64(fields[5], "hash", minStoredKeyBytes, maxStoredKeyBytes); err != nil {
		return phc{}, err
	}
	return c, nil
}

// parseCosts parses "m=65536,t=2,p=1", in that order, and rejects values
// argon2 would panic on (t=0, p=0) or that would allocate or run without
// bound.
func parseCosts(s string) (memory, iterations uint32, parallelism uint8, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%w: parameters %q, want m=…,t=…,p=…", ErrMalformedHash, s)
	}
	m, err := parseCost(parts[0], "m", 1, maxMemory)
	if err != nil {
		return 0, 0, 0, err
	}
	t, err := parseCost(parts[1], "t", 1, maxIterations)
	if err != nil {
		return 0, 0, 0, err
	}
	p, err := parseCost(parts[2], "p", 1, 255)
	if err != nil {
		return 0, 0, 0, err
	}
	if m < 8*p {
		// argon2 needs 8 KiB per lane; it would silently round up.
		return 0, 0, 0, fmt.Errorf("%w: m=%d is below 8×p=%d", ErrMalformedHash, m, 8*p)
	}
	return uint32(m), uint32(t), uint8(p), nil
}

// parseCost parses "name=value" with value a decimal in lo..hi, written
// without sign or leading zeros.
func parseCost(s, name string, lo, hi uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok || v == "" || (len(v) > 1 && v[0] == '0') || strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%w: parameter %q, want %s=<decimal>", ErrMalformedHash, s, name)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%s is outside %d..%d", ErrMalformedHash, name, v, lo, hi)
	}
	return n, nil
}

// decodeB64 decodes unpadded standard base64 of lo..hi bytes. Go's decoder
// skips newlines, so the result is re-encoded and compared to insist on the
// one canonical spelling.
func decodeB64(s, name string, lo, hi int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, fmt.Errorf("%w: %s is not unpadded standard base64", ErrMalformedHash, name)
	}
	if len(b) < lo || len(b) > hi {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d..%d", ErrMalformedHash, name, len(b), lo, hi)
	}
	return b, nil
}
