package components

import (
	"math"
	"runtime"
	"testing"
)

const mib = 1 << 20

func TestIdleLimit(t *testing.T) {
	// The API server after its idle collection: ~171 MB held, 102 MB live.
	got := idleLimit(memSample{held: 171 * 1000 * 1000, live: 102 * 1000 * 1000}, 25)
	if want := int64(196500000); got != want {
		t.Errorf("idleLimit = %d, want %d", got, want)
	}
}

func TestLimiterLiftsWhenBusyAndRearmsWhenQuiet(t *testing.T) {
	l := &limiter{headroom: 25}
	limit := l.armed(memSample{held: 170 * mib, live: 100 * mib})
	if limit != 195*mib {
		t.Fatalf("armed limit = %d MiB, want 195", limit/mib)
	}
	gc := 0.0
	check := func(cpu float64, live uint64) (int64, bool, bool) {
		gc += cpu
		return l.step(memSample{held: 170 * mib, live: live, gcCPU: gc}, limitCheck)
	}
	// Idle: a collection now and then keeps the limit.
	if _, _, change := check(0.2, 100*mib); change {
		t.Fatal("an idle interval changed the limit")
	}
	// Busy: over 10 % of a CPU collecting lifts it.
	if limit, _, change := check(1.5, 100*mib); !change || limit != math.MaxInt64 {
		t.Fatalf("a busy interval: limit %d, change %v; want lifted", limit, change)
	}
	// Not yet quiet for long enough: nothing.
	for i := 0; i < int(quietFor/limitCheck)-1; i++ {
		if _, _, change := check(0.05, 100*mib); change {
			t.Fatalf("re-armed after %d quiet intervals", i+1)
		}
	}
	// A busy interval in between restarts the wait.
	check(0.5, 100*mib)
	for i := 0; i < int(quietFor/limitCheck)-1; i++ {
		if _, _, change := check(0.05, 100*mib); change {
			t.Fatalf("re-armed %d quiet intervals after a busy one", i+1)
		}
	}
	if _, arm, change := check(0.05, 100*mib); !arm || !change {
		t.Fatal("not re-armed after quietFor")
	}
	l.armed(memSample{held: 180 * mib, live: 120 * mib, gcCPU: gc})
	// A live heap grown to 80 % of the limit lifts it even when the
	// collector is not busy yet.
	if limit, _, change := check(0, 170*mib); !change || limit != math.MaxInt64 {
		t.Fatalf("live heap near the limit: limit %d, change %v; want lifted", limit, change)
	}
}

func TestReadMemSample(t *testing.T) {
	runtime.GC() // the live heap is the last collection's
	s := readMemSample()
	if s.held == 0 || s.live == 0 {
		t.Errorf("readMemSample() = %+v: a metric is missing", s)
	}
}
