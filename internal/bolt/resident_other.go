//go:build !linux

package bolt

import (
	"os"

	"go.etcd.io/bbolt"
)

// releaseResident is a no-op outside Linux: the pages the
// open check read stay in the resident set until the kernel reclaims them.
func releaseResident(*bbolt.DB) error { return nil }

// mapResident is a no-op outside Linux: no page was released.
func mapResident(*bbolt.DB, []byte, <-chan struct{}, func() error) error { return nil }

// prefetch is a no-op outside Linux: the open check reads the pages as
// it goes.
func prefetch(*os.File, int64) {}
