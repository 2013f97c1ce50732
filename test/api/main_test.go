package api_test

import (
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// Every HTTP API test runs on both stores: bbolt files, then a real
// three-member etcd cluster.
func TestMain(m *testing.M) { harness.RunOnBothStores(m) }
