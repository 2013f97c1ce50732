package bolt

// SetBulkScan sets bulkScan for a test and returns the restoring func.
func SetBulkScan(n int64) (restore func()) {
	old := bulkScan
	bulkScan = n
	return func() { bulkScan = old }
}

// SetInitialMmapSize sets initialMmapSize for a test (0: bbolt's own, a map
// the size of the file, remapped as it grows) and returns the restoring func.
func SetInitialMmapSize(n int) (restore func()) {
	old := initialMmapSize
	initialMmapSize = n
	return func() { initialMmapSize = old }
}

// Prefetch is prefetch, for a test.
var Prefetch = prefetch

// SetHookBeforePublish sets testHookBeforePublish for a test and returns
// the restoring func.
func SetHookBeforePublish(f func(rev uint64)) (restore func()) {
	old := testHookBeforePublish
	testHookBeforePublish = f
	return func() { testHookBeforePublish = old }
}
