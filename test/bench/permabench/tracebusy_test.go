package main

import (
	"bytes"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// spin runs for d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// waitFor blocks until ch closes: its goroutine waits in it.
func waitFor(ch chan struct{}) { <-ch }

// TestTraceBusy reads a trace of this process: three goroutines spin
// together (on four Ps they run at once, whatever the machine), then one
// spins on alone while another waits on a channel. The report counts three
// running at once, and, while fewer ran, names the waiting goroutine by its
// function and where it waited, and the lone spinner as running.
func TestTraceBusy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skip("tracing is on already:", err)
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); waitFor(release) }()
	go func() { defer wg.Done(); spin(100 * time.Millisecond); spin(200 * time.Millisecond) }()
	for range 2 {
		go func() { defer wg.Done(); spin(100 * time.Millisecond) }()
	}
	time.Sleep(250 * time.Millisecond)
	close(release)
	wg.Wait()
	trace.Stop()

	b, err := traceBusy(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Running) < 4 || b.Running[3] == 0 {
		t.Fatalf("running at once: %v ms, want time with three", b.Running)
	}
	var total float64
	for _, ms := range b.Running {
		total += ms
	}
	if total < 300 {
		t.Fatalf("the trace covers %.0f ms, want at least the 300 spun", total)
	}
	report := b.String()
	for _, want := range []string{"TestTraceBusy.func1: waiting in github.com/permatrix/permatrix/test/bench/permabench.waitFor", "TestTraceBusy.func2: running"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report has no %q:\n%s", want, report)
		}
	}
}
