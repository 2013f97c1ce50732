package harness

import (
	"testing"

	"github.com/permatrix/permatrix/test/debian"
)

// Nginx returns the path of an nginx binary: the one on PATH, else
// Debian's nginx package unpacked into the user cache (debian.Binary).
func Nginx(t testing.TB) string {
	t.Helper()
	return debian.Binary(t, "nginx", "nginx", "usr/sbin/nginx")
}
