package security_test

import (
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// bin is the permatrix binary the tests run (built once by TestMain).
var bin string

func TestMain(m *testing.M) { harness.MainWithBinary(m, &bin) }
