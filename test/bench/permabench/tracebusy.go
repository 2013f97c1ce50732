package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

// Busy is what an execution trace says about the use of the cores: how long
// 0, 1, 2… goroutines ran at once, and, while fewer ran than the most that
// ever did (a core idle, or held by a system call), what every goroutine
// was doing — running, runnable, or waiting or in a system call at its
// innermost function outside the runtime. Goroutines are named by the
// function they started in. It is how the import's pipeline bubbles were
// found (docs/performance.md, 2026-11-29 05:25).
type Busy struct {
	// Running[n] is the time n goroutines ran at once, in ms.
	Running []float64
	// Idle is, while fewer than len(Running)-1 ran, the time each
	// goroutine and what it did took, in ms, most first.
	Idle []BusyState
}

// BusyState is a goroutine and what it was doing.
type BusyState struct {
	Goroutine, State string
	MS               float64
}

// traceBusy reads an execution trace (go tool trace's, /debug/pprof/trace).
func traceBusy(r io.Reader) (*Busy, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	type goroutine struct {
		name, doing string
		ran         bool
	}
	gs := map[trace.GoID]*goroutine{}
	running := 0
	var last trace.Time
	started := false
	byRunning := map[int]float64{}
	// What each goroutine did while n ran: summed per n, kept for n
	// below the most seen (known only at the end).
	type state struct {
		g     *goroutine
		doing string
	}
	doing := map[int]map[state]float64{}
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !started {
			last, started = ev.Time(), true
		}
		if dt := float64(ev.Time()-last) / 1e6; dt > 0 {
			byRunning[running] += dt
			m := doing[running]
			if m == nil {
				m = map[state]float64{}
				doing[running] = m
			}
			for _, g := range gs {
				if g.doing != "" {
					m[state{g, g.doing}] += dt
				}
			}
			last = ev.Time()
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		g := gs[id]
		if g == nil {
			g = &goroutine{}
			gs[id] = g
		}
		entry, inner := stackEnds(st.Stack)
		if g.name == "" {
			g.name = entry
		}
		if from == trace.GoRunning && running > 0 {
			running--
		}
		switch to {
		case trace.GoRunning:
			running++
			g.doing, g.ran = "running", true
		case trace.GoRunnable:
			g.doing = "runnable"
		case trace.GoWaiting:
			g.doing = "waiting in " + inner
		case trace.GoSyscall:
			g.doing = "system call in " + inner
		case trace.GoNotExist:
			delete(gs, id)
		default:
			g.doing = ""
		}
	}
	most := 0
	for n := range byRunning {
		most = max(most, n)
	}
	b := &Busy{Running: make([]float64, most+1)}
	idle := map[[2]string]float64{}
	for n, ms := range byRunning {
		b.Running[n] = ms
		if n == most {
			continue
		}
		// Goroutines that never ran in the trace (parked all along: a
		// server's accept loop), and the runtime's and the tracer's
		// while they wait, are left out.
		for k, v := range doing[n] {
			parked := k.doing != "running" && k.doing != "runnable" &&
				(strings.HasPrefix(k.g.name, "runtime") || k.doing == "waiting in ")
			if k.g.ran && !parked {
				idle[[2]string{k.g.name, k.doing}] += v
			}
		}
	}
	for k, v := range idle {
		b.Idle = append(b.Idle, BusyState{Goroutine: k[0], State: k[1], MS: v})
	}
	sort.Slice(b.Idle, func(i, j int) bool {
		if b.Idle[i].MS != b.Idle[j].MS {
			return b.Idle[i].MS > b.Idle[j].MS
		}
		return b.Idle[i].Goroutine+b.Idle[i].State < b.Idle[j].Goroutine+b.Idle[j].State
	})
	return b, nil
}

// stackEnds are the function a stack starts in (its goroutine's) and its
// innermost function outside the runtime and sync ("" for none).
func stackEnds(st trace.Stack) (entry, inner string) {
	for f := range st.Frames() {
		if inner == "" && !strings.HasPrefix(f.Func, "runtime.") && !strings.HasPrefix(f.Func, "sync.") && !strings.HasPrefix(f.Func, "internal/") {
			inner = f.Func
		}
		entry = f.Func
	}
	return entry, inner
}

// String is the report: the time at each number of running goroutines,
// then the states that took at least 1 % of the time fewer ran.
func (b *Busy) String() string {
	var total, under float64
	for n, ms := range b.Running {
		total += ms
		if n < len(b.Running)-1 {
			under += ms
		}
	}
	var s strings.Builder
	for n, ms := range b.Running {
		fmt.Fprintf(&s, "%d running: %8.0f ms (%4.1f %%)\n", n, ms, 100*ms/max(total, 1e-9))
	}
	fmt.Fprintf(&s, "while fewer than %d ran (%.0f ms), the goroutines:\n", len(b.Running)-1, under)
	for _, st := range b.Idle {
		if st.MS < under/100 {
			break
		}
		fmt.Fprintf(&s, "%8.0f ms  %s: %s\n", st.MS, st.Goroutine, st.State)
	}
	return s.String()
}
