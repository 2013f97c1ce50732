package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// serveGCPercent is serve's garbage-collection target (GOGC) unless the
// operator sets GOGC. An uncached decision allocates ~55 KB that is garbage
// at once; collecting at 400 rather than Go's 100 took the cold set at 1M
// from 4,359 to 6,030 checks/s and the steady RSS stayed under 1 GiB
// (docs/performance.md, "The collector").
const serveGCPercent = 400

// tuneMemory sets the collector for a decision point, unless the operator
// set it through Go's own variables: GOGC (serveGCPercent otherwise), and
// GOMEMLIMIT — inside a container with a memory limit, 90 % of it
// (automemlimit reads the cgroup), so that the larger headroom collects
// harder near the limit instead of passing it. It returns what it set, for
// the log.
func tuneMemory() (gcPercent int, memLimit int64) {
	gcPercent = -1
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
		gcPercent = serveGCPercent
	}
	memLimit = -1
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// No cgroup limit (a plain host, cgroups v1 without one) is no
		// limit: nothing to set.
		if limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup), memlimit.WithLogger(slog.New(slog.DiscardHandler))); err == nil && limit > 0 && limit < 1<<62 {
			memLimit = limit
		}
	}
	return gcPercent, memLimit
}
