package fake

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now %v, want %v", c.Now(), start)
	}
	time.Sleep(2 * time.Millisecond)
	if !c.Now().Equal(start) {
		t.Errorf("a stopped clock moved by itself: %v", c.Now())
	}
	c.Advance(90 * time.Second)
	if want := start.Add(90 * time.Second); !c.Now().Equal(want) {
		t.Errorf("after Advance: %v, want %v", c.Now(), want)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Errorf("after Set: %v, want %v", c.Now(), start)
	}

	r := NewRunningClock()
	before := r.Now()
	time.Sleep(2 * time.Millisecond)
	if !r.Now().After(before) {
		t.Errorf("a running clock stood still")
	}
	r.Advance(time.Hour)
	if d := r.Now().Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("running clock after Advance(1h) is %v ahead", d)
	}
	r.Set(start)
	if d := r.Now().Sub(start); d < 0 || d > time.Minute {
		t.Errorf("running clock after Set is %v past the time set", d)
	}
}
