//go:build unix

package listen_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/permatrix/permatrix/internal/listen"
)

// The mode is the socket's, whatever the process umask lets through.
func TestUnixSocketModeIgnoresUmask(t *testing.T) {
	for _, mask := range []int{0o077, 0o000} {
		old := umask(mask)
		path := socketPath(t)
		ln, err := listen.Listen("unix://" + path)
		umask(old)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		ln.Close()
		if err != nil || fi.Mode().Perm() != 0o660 {
			t.Errorf("umask %03o: socket mode %v, %v; want 0660", mask, fi.Mode().Perm(), err)
		}
	}
}

func umask(m int) int { return syscall.Umask(m) }
