package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// chromiumNames are the executables Chromium is found under, on PATH.
var chromiumNames = []string{"chromium", "chromium-browser"}

// ChromiumFlags are the flags every test browser starts with: headless,
// and nothing that reaches out to the network (this machine's network is
// closed; Chromium's background services would fail, many at a time).
var ChromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// Chromium returns the path of a Chromium executable: $PERMATRIX_CHROMIUM
// if set, else chromium on PATH, else Debian's chromium package installed
// with apt-get (tests and CI run as root; the package lists are refreshed
// when the install finds nothing). Concurrent test binaries wait for one
// another on a lock file in the user cache, so one of them installs and
// the others find the result; once installed, later runs find it on PATH.
func Chromium() (string, error) {
	if p := os.Getenv("PERMATRIX_CHROMIUM"); p != "" {
		if err := chromiumRuns(p); err != nil {
			return "", fmt.Errorf("$PERMATRIX_CHROMIUM: %w", err)
		}
		return p, nil
	}
	if p, ok := findChromium(); ok {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("chromium is not installed and the tests are not running as root: install Debian's chromium package (apt-get install chromium) or set PERMATRIX_CHROMIUM to a Chromium executable")
	}
	unlock, err := lockFile(filepath.Join(toolsDir(), "chromium.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if p, ok := findChromium(); ok { // another test binary installed it meanwhile
		return p, nil
	}
	if err := aptInstall("chromium"); err != nil {
		return "", err
	}
	p, ok := findChromium()
	if !ok {
		return "", errors.New("apt-get installed chromium, but no chromium executable is on PATH")
	}
	return p, nil
}

// findChromium looks for a Chromium that starts.
func findChromium() (string, bool) {
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil && chromiumRuns(p) == nil {
			return p, true
		}
	}
	return "", false
}

// chromiumRuns checks that the executable answers --version: a package
// half-installed (an interrupted apt-get) has a binary that does not.
func chromiumRuns(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s --version did not answer in 30s", path)
	case err != nil:
		return fmt.Errorf("%s --version: %v\n%s", path, err, out)
	case !strings.Contains(strings.ToLower(string(out)), "chrom"):
		return fmt.Errorf("%s --version printed %q: not Chromium", path, out)
	}
	return nil
}

// aptInstall installs Debian packages, non-interactively, waiting for
// another apt or dpkg to finish, and refreshing the package lists once if
// the first attempt fails (a new machine has none, or stale ones).
func aptInstall(pkgs ...string) error {
	install := func() error {
		args := append([]string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %v\n%s", strings.Join(pkgs, " "), err, tail(out, 4000))
		}
		return nil
	}
	err := install()
	if err == nil {
		return nil
	}
	update := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q")
	if out, uerr := update.CombinedOutput(); uerr != nil {
		return fmt.Errorf("%v\napt-get update: %v\n%s", err, uerr, tail(out, 4000))
	}
	return install()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// toolsDir is the user cache's permatrix-tools directory, where the
// pinned tools and the permatrix binary are kept between runs.
func toolsDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "permatrix-tools")
}

// lockFile takes an exclusive lock on the file at path (waiting up to 20
// minutes), for work that concurrent test binaries must not do twice at
// once.
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
