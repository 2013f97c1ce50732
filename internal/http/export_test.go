package http

// IsOPAPath is isOPAPath, for the external tests: which answers carry OPA's
// error envelope.
var IsOPAPath = isOPAPath
