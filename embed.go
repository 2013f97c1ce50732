package permatrix

import "embed"

// DefaultBundle is the repository's policies/ and systems/ trees, compiled into
// the binary so that `permatrix serve` needs no other file. The embed
// directive has to live at the repository root: go:embed cannot reach a
// parent directory.
//
//go:embed policies systems
var DefaultBundle embed.FS
