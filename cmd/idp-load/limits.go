package main

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"idp/password"
)

// serverSettings are the settings of the server that the machine's limits
// and the flood budget depend on, read from the same IDP_… variables the
// server reads (with the server's defaults).
type serverSettings struct {
	KeySize         int             `json:"key_size"`
	Argon2          password.Params `json:"argon2"`
	HashConcurrency int             `json:"hash_concurrency"`
}

// settingsFromEnv reads IDP_KEY_SIZE, IDP_ARGON2_* and IDP_HASH_CONCURRENCY
// as idp does; unset means idp's default.
func settingsFromEnv(getenv func(string) string) (serverSettings, error) {
	s := serverSettings{KeySize: 2048, Argon2: password.DefaultParams(), HashConcurrency: runtime.GOMAXPROCS(0)}
	num := func(name string, set func(uint64)) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%s: %q is not a whole number", name, v)
		}
		set(n)
		return nil
	}
	for _, e := range []struct {
		name string
		set  func(uint64)
	}{
		{"IDP_KEY_SIZE", func(n uint64) { s.KeySize = int(n) }},
		{"IDP_ARGON2_MEMORY_KIB", func(n uint64) { s.Argon2.Memory = uint32(n) }},
		{"IDP_ARGON2_ITERATIONS", func(n uint64) { s.Argon2.Iterations = uint32(n) }},
		{"IDP_ARGON2_PARALLELISM", func(n uint64) { s.Argon2.Parallelism = uint8(min(n, 255)) }},
		{"IDP_HASH_CONCURRENCY", func(n uint64) {
			if n > 0 {
				s.HashConcurrency = int(n)
			}
		}},
	} {
		if err := num(e.name, e.set); err != nil {
			return s, err
		}
	}
	if s.KeySize != 2048 && s.KeySize != 3072 {
		return s, fmt.Errorf("IDP_KEY_SIZE: %d is not 2048 or 3072", s.KeySize)
	}
	return s, s.Argon2.Validate()
}

// Limits are the machine's ceilings for the work the targets compare with,
// each on all cores.
type Limits struct {
	Cores        int             `json:"cores"` // GOMAXPROCS: goroutines that ran each measurement
	KeySize      int             `json:"key_size"`
	SignPerSec   float64         `json:"rs256_sign_per_sec"`
	VerifyPerSec float64         `json:"rs256_verify_per_sec"`
	Argon2       password.Params `json:"argon2"`
	HashesPerSec float64         `json:"argon2id_hashes_per_sec"`
	// The same per CPU-second of the measuring goroutines times the cores:
	// the ceilings of a machine nothing else uses.
	SignPerSecCPU   float64   `json:"rs256_sign_per_sec_cpu"`
	VerifyPerSecCPU float64   `json:"rs256_verify_per_sec_cpu"`
	HashesPerSecCPU float64   `json:"argon2id_hashes_per_sec_cpu"`
	MeasuredAt      time.Time `json:"measured_at"`
	MeasureSeconds  float64   `json:"measure_seconds"` // all figures together
}

// benchClaims is a typical access token's header and claims: what the server
// signs.
var benchClaims = []byte(`eyJhbGciOiJSUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0.` + base64.RawURLEncoding.EncodeToString([]byte(
	`{"iss":"http://127.0.0.1:8080","sub":"12345","aud":["http://127.0.0.1:8080"],"client_id":"mobile","scope":"openid profile email offline_access","iat":1893456000,"exp":1893456900,"jti":"c4ca4238-a0b9-3382-8dcc-509a6f75849b"}`)))

// limitMeter measures RS256 signatures and verifications (crypto/rsa,
// PKCS #1 v1.5 over SHA-256 of a JWT signing input, as go-jose does) and
// argon2id hashes (idp's own password.Hasher) per second, each on GOMAXPROCS
// goroutines. measure can be called several times, between the load's
// rounds, so that the limits are sampled over the same stretch of time as
// the scenarios they are compared with; the figures are the totals.
type limitMeter struct {
	settings serverSettings
	cores    int
	key      *rsa.PrivateKey
	sig      []byte
	hasher   *password.Hasher
	started  time.Time

	// Sums of rate × seconds measured, and of seconds, per figure: the
	// figure is their quotient, the time-weighted mean over the rounds.
	sign, verify, hash          rateSum
	signCPU, verifyCPU, hashCPU rateSum
}

func newLimitMeter(s serverSettings) (*limitMeter, error) {
	m := &limitMeter{settings: s, cores: runtime.GOMAXPROCS(0), started: time.Now().UTC()}
	var err error
	if m.key, err = rsa.GenerateKey(rand.Reader, s.KeySize); err != nil {
		return nil, err
	}
	if m.sig, err = m.signOnce(); err != nil {
		return nil, err
	}
	// One slot per core and a queue that never runs out: the hasher's
	// ceiling, not its admission control.
	if m.hasher, err = password.NewHasher(s.Argon2, m.cores, time.Hour); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *limitMeter) signOnce() ([]byte, error) {
	h := sha256.Sum256(benchClaims)
	return rsa.SignPKCS1v15(nil, m.key, crypto.SHA256, h[:])
}

// rateSum accumulates a rate measured over several stretches of time.
type rateSum struct{ weighted, seconds float64 }

func (s *rateSum) add(rate float64, d time.Duration) {
	s.weighted += rate * d.Seconds()
	s.seconds += d.Seconds()
}

func (s rateSum) rate() float64 {
	if s.seconds == 0 {
		return 0
	}
	return s.weighted / s.seconds
}

// measure spends d on each figure (argon2id at least a second, for enough
// hashes to count). Each goroutine first computes one hash untimed, so that
// the heap holds the memory the hashes reuse, as a busy server's does:
// otherwise each hash pays for faulting 64 MiB of fresh pages in.
func (m *limitMeter) measure(ctx context.Context, d time.Duration) error {
	var warm sync.WaitGroup
	for range m.cores {
		warm.Go(func() { m.hasher.Hash(ctx, "warm up") })
	}
	warm.Wait()
	for _, f := range []struct {
		sum, cpu *rateSum
		d        time.Duration
		op       func() error
	}{
		{&m.sign, &m.signCPU, d, func() error { _, err := m.signOnce(); return err }},
		{&m.verify, &m.verifyCPU, d, func() error {
			h := sha256.Sum256(benchClaims)
			return rsa.VerifyPKCS1v15(&m.key.PublicKey, crypto.SHA256, h[:], m.sig)
		}},
		{&m.hash, &m.hashCPU, max(d, time.Second), func() error {
			_, err := m.hasher.Hash(ctx, "correct horse battery staple")
			return err
		}},
	} {
		rate, cpuRate, err := perSecond(ctx, m.cores, f.d, f.op)
		if err != nil {
			return err
		}
		f.sum.add(rate, f.d)
		f.cpu.add(cpuRate, f.d)
	}
	return nil
}

// limits returns what the measurements add up to.
func (m *limitMeter) limits() Limits {
	return Limits{
		Cores: m.cores, KeySize: m.settings.KeySize, Argon2: m.settings.Argon2, MeasuredAt: m.started,
		SignPerSec: m.sign.rate(), VerifyPerSec: m.verify.rate(), HashesPerSec: m.hash.rate(),
		SignPerSecCPU: m.signCPU.rate(), VerifyPerSecCPU: m.verifyCPU.rate(), HashesPerSecCPU: m.hashCPU.rate(),
		MeasureSeconds: m.sign.seconds + m.verify.seconds + m.hash.seconds,
	}
}

// measureLimits measures every limit once, for d each.
func measureLimits(ctx context.Context, s serverSettings, d time.Duration) (Limits, error) {
	m, err := newLimitMeter(s)
	if err != nil {
		return Limits{}, err
	}
	if err := m.measure(ctx, d); err != nil {
		return Limits{}, err
	}
	return m.limits(), nil
}

// perSecond runs op on n goroutines, each until d has passed, and returns
// the operations per second they completed together. Each goroutine's rate
// is its operations over the time it spent on them (up to the end of the
// operation in progress at the deadline), so slow operations are not
// undercounted by a tail in which some goroutines have already stopped.
// cpuRate is the operations per CPU-second of this process times n: the
// rate n otherwise idle cores would reach.
func perSecond(ctx context.Context, n int, d time.Duration, op func() error) (rate, cpuRate float64, err error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    int
		firstErr error
	)
	before := sampleCPU(0)
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() {
			count := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := op(); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
				count++
			}
			mu.Lock()
			rate += float64(count) / time.Since(start).Seconds()
			total += count
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	if used := sampleCPU(0).self - before.self; used > 0 {
		cpuRate = float64(total) / used.Seconds() * float64(n)
	}
	return rate, cpuRate, ctx.Err()
}
