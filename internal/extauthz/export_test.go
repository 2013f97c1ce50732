package extauthz

// SetTestHookCallsEnded sets, for one test, what runs once a connection's
// last call has ended, as it is told idle.
func SetTestHookCallsEnded(t interface{ Cleanup(func()) }, f func()) {
	testHookCallsEnded.Store(&f)
	t.Cleanup(func() { testHookCallsEnded.Store(nil) })
}

// SetTestHookCallBegins sets, for one test, what runs as a call begins,
// before its connection is told busy.
func SetTestHookCallBegins(t interface{ Cleanup(func()) }, f func()) {
	testHookCallBegins.Store(&f)
	t.Cleanup(func() { testHookCallBegins.Store(nil) })
}
