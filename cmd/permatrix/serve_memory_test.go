package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// unsetenv unsets name for the test, restoring it after.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value when the test ends
	os.Unsetenv(name)
}

// serve collects at GOGC=400 unless the operator set GOGC, and leaves
// GOMEMLIMIT alone when the operator set it.
func TestTuneMemory(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	unsetenv(t, "GOGC")
	if gc, _ := tuneMemory(); gc != serveGCPercent {
		t.Errorf("without GOGC: tuneMemory set %d, want %d", gc, serveGCPercent)
	}
	if now := debug.SetGCPercent(100); now != serveGCPercent {
		t.Errorf("without GOGC the collector is at %d, want %d", now, serveGCPercent)
	}

	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	t.Setenv("GOMEMLIMIT", "300MiB")
	limitBefore := debug.SetMemoryLimit(-1)
	if gc, limit := tuneMemory(); gc != -1 || limit != -1 {
		t.Errorf("with GOGC and GOMEMLIMIT set: tuneMemory set %d and %d, want neither", gc, limit)
	}
	if now := debug.SetGCPercent(100); now != 50 {
		t.Errorf("with GOGC=50 the collector is at %d", now)
	}
	if now := debug.SetMemoryLimit(-1); now != limitBefore {
		t.Errorf("with GOMEMLIMIT set the limit moved from %d to %d", limitBefore, now)
	}
}
