package bolt

// SetBulkScan sets bulkScan for a test and returns the restoring func.
func SetBulkScan(n int64) (restore func()) {
	old := bulkScan
	bulkScan = n
	return func() { bulkScan = old }
}
