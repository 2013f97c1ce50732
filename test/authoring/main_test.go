// Package authoring_test tests the policy authors' workflow through the
// real permatrix binary: the permission matrix against the vendors'
// tables (test/fixtures), `permatrix test`, bundle build/sign/verify (and
// stock opa reading the bundles), hot reload with serve --watch, and
// decision replay.
package authoring_test

import (
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

var bin string

func TestMain(m *testing.M) { harness.MainWithBinary(m, &bin) }

// permatrix runs the binary in dir ("" is the repository root) and returns
// stdout, stderr and the exit code.
func permatrix(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	return run(t, dir, bin, args...)
}

func run(t *testing.T, dir, name string, args ...string) (string, string, int) {
	t.Helper()
	return harness.Run(t, dir, name, args...)
}
