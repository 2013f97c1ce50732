// Package debian gives tests the programs of Debian packages a fresh
// machine does not have (nginx, strace): the one on PATH, else the
// package unpacked into the user cache by apt-get download and dpkg -x.
// Nothing is installed system-wide and no service is started, so the
// tests need no root and no setup step beyond `go test ./...`.
package debian

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary returns the path of the program name of Debian's package pkg: the
// one on PATH, else rel (its path inside the package, "usr/sbin/nginx")
// under the package unpacked into the user cache
// (permatrix-tools/<pkg>-deb), downloading it the first time (the
// package lists are refreshed first if the download finds nothing).
func Binary(t testing.TB, pkg, name, rel string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "permatrix-tools", pkg+"-deb")
	bin := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	work, err := os.MkdirTemp("", pkg+"-deb")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	download := func() error {
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
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
	debs, _ := filepath.Glob(filepath.Join(work, pkg+"_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %v", pkg, debs)
	}
	// Unpacked beside its place, then moved there in one rename: on a
	// fresh machine the cache directory may not exist yet (dpkg -x makes
	// no parents), and test binaries of other packages may be unpacking
	// it at the same moment — the first rename wins, the others use it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), pkg+"-deb.*.tmp")
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
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Debian's %s holds no %s: %v", pkg, rel, err)
	}
	return bin
}
