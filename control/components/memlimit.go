package components

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The idle memory limit (componentconfig.IdleMemoryLimitEnv).
//
// What an idle Go process holds beyond its live heap is mostly not the
// GOGC headroom but pages the runtime keeps: free slots in partly used
// spans and freed spans the background scavenger has not yet returned.
// GOGC cannot reach them (the API server at GOGC=25 was no smaller than at
// 50, docs/performance.md); a memory limit can — it counts all of the
// runtime's memory and makes the scavenger return what is above it. A
// fixed limit, though, is a trap: measured, the API server held to
// GOMEMLIMIT=150MiB collected ~2.3 times a second for good (28 % of the
// machine's CPU), because its live heap plus fragmentation was already
// near that. So the limit here follows the process:
//
//   - it is set once the component is idle (after IdleAfter and the
//     collection that returns start-up's pages), to the memory the
//     runtime holds right then plus headroom (a percentage of the live
//     heap) for new allocations;
//   - every limitCheck it is lifted when the collector spent more than
//     liftGCShare of one CPU in the last interval, or when the live heap
//     grew to within liftLiveShare of the limit — load, not idleness;
//     GOGC keeps bounding the heap then;
//   - after quietFor with the collector below quietGCShare it is set
//     again the same way, from the memory held then.
const (
	limitCheck    = 10 * time.Second
	liftGCShare   = 0.10
	liftLiveShare = 0.80
	quietGCShare  = 0.02
	quietFor      = 2 * time.Minute
)

// memSample is what the limit is computed from, read from runtime/metrics.
type memSample struct {
	held  uint64  // memory the runtime holds and has not returned (total − released)
	live  uint64  // live heap after the last collection
	gcCPU float64 // cumulative CPU seconds spent collecting (idle marking not counted)
}

// The collector's CPU is its assists, dedicated mark workers and pauses;
// not /cpu/classes/gc/total, which also counts mark workers run on
// otherwise idle processors — free on an idle machine, and enough to look
// "busy" there.
var memMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/live:bytes",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
}

func readMemSample() memSample {
	s := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	var gc float64
	for _, v := range s[3:] {
		if v.Value.Kind() == metrics.KindFloat64 {
			gc += v.Value.Float64()
		}
	}
	return memSample{held: u(0) - u(1), live: u(2), gcCPU: gc}
}

// idleLimit is the limit for a process that holds m right after a
// collection that returned its free pages: what it holds plus headroom
// percent of its live heap.
func idleLimit(m memSample, headroom int) int64 {
	return int64(m.held + m.live*uint64(headroom)/100)
}

// limiter decides, one check at a time, whether the idle limit holds.
type limiter struct {
	headroom int
	limit    int64 // 0: lifted
	quiet    time.Duration
	last     memSample
}

// step takes the sample of one check, interval after the previous one,
// and returns the limit to set (math.MaxInt64 to lift it), whether to
// return free pages first (re-arming: the limit is computed from a fresh
// collection), and whether anything changes.
func (l *limiter) step(now memSample, interval time.Duration) (limit int64, arm bool, change bool) {
	share := (now.gcCPU - l.last.gcCPU) / interval.Seconds()
	l.last = now
	if l.limit != 0 {
		if share > liftGCShare || float64(now.live) > liftLiveShare*float64(l.limit) {
			l.limit, l.quiet = 0, 0
			return math.MaxInt64, false, true
		}
		return 0, false, false
	}
	if share >= quietGCShare {
		l.quiet = 0
		return 0, false, false
	}
	l.quiet += interval
	if l.quiet < quietFor {
		return 0, false, false
	}
	return 0, true, true
}

// armed records the limit set from s (after its collection).
func (l *limiter) armed(s memSample) int64 {
	l.limit = idleLimit(s, l.headroom)
	l.last = s
	l.quiet = 0
	return l.limit
}

// runIdleLimit keeps the idle memory limit; it runs for the life of the
// process. FreeOSMemory has just run (tuneGC).
func runIdleLimit(headroom int) {
	l := &limiter{headroom: headroom}
	set := func() {
		limit := l.armed(readMemSample())
		debug.SetMemoryLimit(limit)
		fmt.Fprintf(os.Stderr, "berth-node: idle memory limit %d MiB (held now + %d%% of the live heap)\n", limit>>20, headroom)
	}
	set()
	for {
		time.Sleep(limitCheck)
		limit, arm, change := l.step(readMemSample(), limitCheck)
		if !change {
			continue
		}
		if arm {
			debug.FreeOSMemory()
			set()
			continue
		}
		debug.SetMemoryLimit(limit)
		fmt.Fprintf(os.Stderr, "berth-node: idle memory limit lifted (collector busy or live heap near the limit); GOGC alone bounds the heap until idle again\n")
	}
}
