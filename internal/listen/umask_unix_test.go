//go:build unix

package listen_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
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

// Under a lax umask the socket is never seen at its path with any mode but
// 0660, not even for a moment: a poller watching the path while Listen runs
// again and again sees nothing else, and the private directory it was
// bound in is gone each time. (Binding in place and then chmod-ing shows
// this poller the umask's 0777 within a few hundred rounds on a 2-core
// machine — in each of three runs when this test was written — though
// not by construction: it is a stress test of the window.)
func TestUnixSocketNeverSeenWithUmaskMode(t *testing.T) {
	old := umask(0)
	defer umask(old)
	path := socketPath(t)
	var stop atomic.Bool
	var seen atomic.Uint32 // the first wrong mode seen, plus 1<<31
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm() != 0o660 {
				seen.CompareAndSwap(0, 1<<31|uint32(fi.Mode().Perm()))
			}
		}
	}()
	for range 500 {
		ln, err := listen.Listen("unix://" + path)
		if err != nil {
			t.Fatal(err)
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	<-done
	if m := seen.Load(); m != 0 {
		t.Errorf("the socket was seen at its path with mode %03o", m&0o777)
	}
	if es, _ := os.ReadDir(filepath.Dir(path)); len(es) != 0 {
		t.Errorf("left behind: %v", es)
	}
}

func umask(m int) int { return syscall.Umask(m) }
