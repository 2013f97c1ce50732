package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Nginx returns the path of an nginx binary: the one on PATH, else
// Debian's nginx package unpacked into the user cache (apt-get download and
// dpkg -x: nothing is installed system-wide and no service is started; the
// package lists are refreshed first if the download finds nothing).
func Nginx(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "permatrix-tools", "nginx-deb")
	bin := filepath.Join(dir, "usr", "sbin", "nginx")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	work, err := os.MkdirTemp("", "nginx-deb")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	download := func() error {
		cmd := exec.Command("apt-get", "download", "nginx")
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get download nginx: %v\n%s", err, out)
		}
		return nil
	}
	if err := download(); err != nil {
		if out, uerr := exec.Command("apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			t.Fatalf("%v\napt-get update: %v\n%s", err, uerr, out)
		}
		if err := download(); err != nil {
			t.Fatal(err)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(work, "nginx_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download nginx left %v", debs)
	}
	// Unpacked beside its place, then moved there in one rename: on a
	// fresh machine the cache directory may not exist yet (dpkg -x makes
	// no parents), and test binaries of other packages may be unpacking
	// it at the same moment — the first rename wins, the others use it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "nginx-deb.*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(bin); serr == nil {
			return bin
		}
		t.Fatal(err)
	}
	return bin
}
