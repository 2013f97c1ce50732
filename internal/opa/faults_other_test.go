//go:build !linux

package opa_test

// minorFaults is unknown here.
func minorFaults() int64 { return -1 }
