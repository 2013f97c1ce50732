package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/debian"
)

// Nginx returns the path of an nginx binary: the one on PATH, else
// Debian's nginx package unpacked into the user cache (debian.Binary).
func Nginx(t testing.TB) string {
	t.Helper()
	return debian.Binary(t, "nginx", "nginx", "usr/sbin/nginx")
}

// StartNginx runs nginx, killed when the test ends, on the configuration
// conf makes of its prefix directory (for its pid, logs and temporary
// files), the loopback address its server is to listen on, and a server
// block to put in its http block (readiness); it returns nginx's URL.
//
// The address is found free and given to nginx later: another test
// process may take it meanwhile. nginx then cannot bind it and exits,
// while a dial to the port reaches the other process — so nginx is known
// to serve only once it answers on a unix socket of its own (the
// readiness block's, opened with the port), and one that exits with its
// port in use is started again on another (five tries).
func StartNginx(t testing.TB, conf func(dir, addr, readiness string) string) string {
	t.Helper()
	nginx := Nginx(t)
	sockDir, err := os.MkdirTemp("", "ngx") // socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		ready := filepath.Join(sockDir, fmt.Sprintf("ready%d.sock", attempt))
		addr := freeAddr(t)
		c := conf(dir, addr, "server { listen unix:"+ready+"; return 204; }")
		err := runNginx(t, nginx, dir, c, ready)
		if err == nil {
			return "http://" + addr
		}
		if attempt == 5 || !errors.Is(err, errNginxPortTaken) {
			t.Fatalf("%v\n%s", err, c)
		}
		t.Logf("nginx on %s: the port was taken meanwhile; again on another", addr)
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// errNginxPortTaken is nginx exiting as its port was in use.
var errNginxPortTaken = errors.New("nginx's port was taken")

// runNginx starts nginx on conf in dir and waits until it answers on
// ready (a unix socket conf listens on).
func runNginx(t testing.TB, nginx, dir, conf, ready string) error {
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out := &LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	dieWithTest(cmd) // one process: the tests' configurations say master_process off
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", ready)
		},
	}}
	defer probe.CloseIdleConnections()
	logs := func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return out.String() + "\n" + string(log)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := probe.Get("http://nginx/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return fmt.Errorf("nginx answered on its readiness socket %d:\n%s", resp.StatusCode, logs())
			}
			return nil
		}
		select {
		case <-exited:
			if l := logs(); strings.Contains(l, "Address already in use") {
				return fmt.Errorf("%w:\n%s", errNginxPortTaken, l)
			}
			return fmt.Errorf("nginx exited:\n%s", logs())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not start:\n%s", logs())
		}
	}
}
