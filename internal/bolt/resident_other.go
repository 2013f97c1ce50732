//go:build !linux

package bolt

import "go.etcd.io/bbolt"

// releaseResident is a no-op outside Linux: the pages the
// open check read stay in the resident set until the kernel reclaims them.
func releaseResident(*bbolt.DB) error { return nil }
