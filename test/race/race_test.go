// Package race runs, under Go's race detector, the tests written to catch
// data races between concurrent evaluations, writes and reads: without
// the detector they pass whatever happens. `go test ./...` runs them so
// (this test starts `go test -race` on them); docs/architecture.md says
// which sharing each one guards.
package race_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// underRace are the race-sensitive tests, by package.
var underRace = map[string][]string{
	"./internal/opa": {
		"TestVMConcurrentDecisionsAsSequential", // one vm Policy's pooled evaluations and store nodes
		"TestSharedTermsAcrossAPIs",             // the vm's shared leaf terms, every API at once
		"TestCompileAPIDoesNotWriteSharedTerms", // partial evaluation writing what it reads
		"TestCompileAPIDoesNotWriteBundleData",
		"TestStoreNodesReset",                              // store nodes pooled between evaluations
		"TestScopeTermsSortedBeforeShared",                 // scope terms verdict inputs share, iterated by one, copied by another
		"TestPooledCheckInputsUnderGoroutines",             // a check's input filled into pooled objects, one decision's at a time
		"TestPooledAssignInputsUnderGoroutines",            // a write's verdict input filled into pooled objects
		"TestConflictFallbackOverPooledInputsConcurrently", // a pooled input copied for topdown after the vm's conflict
		"TestCancelledEvaluationsLeaveThePoolsAsNew",       // pooled inputs and store nodes given back after a cancel mid-run
	},
	"./internal/vm": {
		"TestNestedScansAgreeAfterErrors",           // a pooled Program's scans from many goroutines
		"TestConstantsConcurrently",                 // constant rules computed and shared by many evaluations
		"TestConstLiteralsAreNotChanged",            // literals of constants shared by many evaluations
		"TestConstantsAdversarial",                  // the same, beside rules of input and data.store
		"TestEmptySets",                             // the empty set every evaluation shares until a first element
		"TestObjectLiteralsAreTopdowns",             // object literals made whole, each evaluation's own
		"TestArrayLiteralsAreTopdowns",              // array literals made whole, each evaluation's own
		"TestReleaseUnderStress",                    // pooled evaluations released after panics, errors, cancellations
		"TestNumberLiteralsSharedAcrossEvaluations", // the plan's number literals, shared by every evaluation
		"TestSharedValuesSortedBeforeShared",        // shared sets and objects: sorted in place by one, read unsorted by another
		"TestEmptyArraysShared",                     // the empty array every evaluation shares, appended to by many
	},
	"./internal/pdp": {
		"TestDelegationRaces",                     // concurrent delegated writes
		"TestImportOverlapJudgesByTheChunkBefore", // an import's chunk planned while the one before commits
		"TestImportOverlapSeesTheRecordsBefore",
		"TestMixedChecksConcurrentlyWithTheDecisionLog", // pooled and built inputs, the cache and the decision log at once
		"TestPooledVerdictInputsRefuseInTheirOwnWords",  // pooled verdict inputs of writes judged at once (only -race catches a breach)
	},
	"./internal/bolt": {"TestReleaseWhileWritersGrowTheFile"},
}

// TestUnderTheRaceDetector runs each package's race-sensitive tests with
// -race: a data race fails them.
func TestUnderTheRaceDetector(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the race detector's build takes a minute")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("the race detector needs cgo and a C compiler; none here")
	}
	// One go test for every package, so that their race builds and runs
	// overlap. The names are unique across the packages (-run applies to
	// each).
	var pkgs, names []string
	for pkg, tests := range underRace {
		pkgs = append(pkgs, pkg)
		names = append(names, tests...)
	}
	slices.Sort(pkgs)
	args := append([]string{"test", "-race", "-count=1", "-v", "-run", "^(" + strings.Join(names, "|") + ")$"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = harness.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("go test -race: %v", err)
	}
	for _, pkg := range pkgs {
		t.Run(strings.TrimPrefix(pkg, "./internal/"), func(t *testing.T) {
			for _, name := range underRace[pkg] {
				if !strings.Contains(string(out), "--- PASS: "+name+" ") {
					t.Errorf("go test -race %s did not pass %s", pkg, name)
				}
			}
		})
	}
	if t.Failed() {
		t.Logf("go test %s:\n%s", strings.Join(args[1:], " "), out)
	}
}
