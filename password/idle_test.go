package password

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// allocated returns how many bytes f allocated on the heap (process-wide, so
// only a figure far above the noise, such as an argon2 block, tells).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// heldFromOS is the heap memory the runtime holds from the system: what
// counts in the resident set.
func heldFromOS() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapSys - ms.HeapReleased
}

// idleHasher is a Hasher of testParams whose buffers are dropped after idle,
// counting its returns of memory to the system instead of making them.
func idleHasher(t *testing.T, concurrency int, idle time.Duration) (*Hasher, *atomic.Int32) {
	t.Helper()
	h := newTestHasher(t, testParams(), concurrency, time.Minute)
	var freed atomic.Int32
	h.idle, h.freeOS = idle, func() { freed.Add(1) }
	return h, &freed
}

func hashOnce(t *testing.T, h *Hasher) {
	t.Helper()
	if _, err := h.Hash(context.Background(), "correct horse battery staple"); err != nil {
		t.Fatalf("Hash: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBuffersKeptWhileBusy: hashes that follow each other closer than the
// idle period reuse the slot's block; none allocates one.
func TestBuffersKeptWhileBusy(t *testing.T) {
	const idle = 400 * time.Millisecond
	h, freed := idleHasher(t, 1, idle)
	block := uint64(testParams().Memory) * 1024
	hashOnce(t, h) // allocates the slot's block
	// Back to back for over twice the idle period: the timer is re-armed
	// by every hash and must never drop the block in between.
	got := allocated(func() {
		for start := time.Now(); time.Since(start) < 2*idle+100*time.Millisecond; {
			hashOnce(t, h)
			time.Sleep(idle / 4)
		}
	})
	if got >= block/2 {
		t.Errorf("hashes within the idle period allocated %d bytes, want none of the %d-byte block", got, block)
	}
	if n := freed.Load(); n != 0 {
		t.Errorf("memory returned to the system %d times while hashing", n)
	}
}

// TestBuffersReleasedWhenIdle: after the idle period the slots hold no block
// and the memory goes back to the system once; the next hash allocates a
// block again, and the next idle period drops it again.
func TestBuffersReleasedWhenIdle(t *testing.T) {
	const idle = 50 * time.Millisecond
	h, freed := idleHasher(t, 2, idle)
	block := uint64(testParams().Memory) * 1024
	// Warm both slots.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { hashOnce(t, h) })
	}
	wg.Wait()
	waitFor(t, "the buffers to be dropped", func() bool { return freed.Load() == 1 })
	time.Sleep(4 * idle)
	if n := freed.Load(); n != 1 {
		t.Errorf("memory returned to the system %d times over one idle period, want once", n)
	}
	if got := allocated(func() { hashOnce(t, h) }); got < block {
		t.Errorf("first hash after the idle period allocated %d bytes, want a fresh %d-byte block (the old one dropped)", got, block)
	}
	waitFor(t, "the buffers to be dropped again", func() bool { return freed.Load() == 2 })
	if got := allocated(func() { hashOnce(t, h) }); got < block {
		t.Errorf("first hash after the second idle period allocated %d bytes, want a fresh %d-byte block", got, block)
	}
}

// TestReleaseReturnsMemory: dropping the buffers gives their memory back to
// the system promptly, not at the scavenger's pace.
func TestReleaseReturnsMemory(t *testing.T) {
	h := newTestHasher(t, testParams(), 2, time.Minute)
	h.idle = 50 * time.Millisecond
	block := uint64(testParams().Memory) * 1024
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { hashOnce(t, h) })
	}
	wg.Wait()
	busy := heldFromOS()
	waitFor(t, "the buffers to be returned", func() bool { return busy-heldFromOS() >= 3*block/2 })
}

// TestDummyHoldsNoBuffer: the dummy hash NewHasher computes leaves neither a
// slot's block nor its own resident: a server nobody has logged in to does
// not hold Memory KiB.
func TestDummyHoldsNoBuffer(t *testing.T) {
	p := DefaultParams() // 64 MiB: far above the rest of the heap's noise
	block := uint64(p.Memory) * 1024
	runtime.GC()
	debug.FreeOSMemory()
	before := heldFromOS()
	h, err := NewHasher(p, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if grew := int64(heldFromOS()) - int64(before); grew >= int64(block/2) {
		t.Errorf("NewHasher left %d bytes more heap held from the system, want well under the %d-byte block", grew, block)
	}
	if got := allocated(func() { hashOnce(t, h) }); got < block {
		t.Errorf("first hash allocated %d bytes, want a fresh %d-byte block: the slot already held one", got, block)
	}
}

// TestIdleConcurrent: hashes from many goroutines across idle periods, for
// the race detector; every slot stays usable and no goroutine outlives the
// idle timer.
func TestIdleConcurrent(t *testing.T) {
	h, freed := idleHasher(t, 2, 20*time.Millisecond)
	start := runtime.NumGoroutine()
	for burst := range 3 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := h.Hash(context.Background(), "pw"); err != nil {
					t.Errorf("burst %d: Hash: %v", burst, err)
				}
				if err := h.VerifyDummy(context.Background(), "pw"); err != nil {
					t.Errorf("burst %d: VerifyDummy: %v", burst, err)
				}
			})
		}
		wg.Wait()
		want := int32(burst + 1)
		waitFor(t, "the idle release", func() bool { return freed.Load() == want })
	}
	if got := len(h.slots); got != cap(h.slots) {
		t.Errorf("%d of %d slots free after the bursts", got, cap(h.slots))
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= start })
}

// TestWithRelease: the release given replaces the default, and runs once
// after the start-up dummy hash and once per idle period.
func TestWithRelease(t *testing.T) {
	var released atomic.Int32
	h, err := NewHasher(testParams(), 1, time.Minute, WithRelease(func() { released.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	if n := released.Load(); n != 1 {
		t.Fatalf("release ran %d times after NewHasher, want once (after the dummy hash)", n)
	}
	h.idle = 20 * time.Millisecond
	hashOnce(t, h)
	waitFor(t, "the idle release", func() bool { return released.Load() == 2 })
}
