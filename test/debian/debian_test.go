package debian

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A program not on PATH comes from its Debian package, unpacked into the
// cache, and runs; the second call finds it there. (The name asked for is
// one PATH cannot have, so the download path runs even where strace is
// installed.)
func TestBinaryUnpacksThePackage(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("not a Debian machine: no apt-get")
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	bin := Binary(t, "strace", "permatrix-no-such-program", "usr/bin/strace")
	if want := filepath.Join(cache, "permatrix-tools", "strace-deb", "usr", "bin", "strace"); bin != want {
		t.Fatalf("Binary = %s, want %s", bin, want)
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "strace") {
		t.Fatalf("%s -V: %v\n%s", bin, err, out)
	}
	if again := Binary(t, "strace", "permatrix-no-such-program", "usr/bin/strace"); again != bin {
		t.Errorf("second call: %s", again)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "permatrix-tools")); len(entries) != 1 {
		t.Errorf("the cache holds %d entries, want the package only: %v", len(entries), entries)
	}
}
