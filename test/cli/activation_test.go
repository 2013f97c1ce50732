package cli_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// activate is serve with args, started as systemd starts a
// socket-activated service (harness.SocketActivate), with the sockets
// files named names (":"-separated) and env added to the environment.
func activate(t *testing.T, names string, files []*os.File, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := command(t, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	harness.SocketActivate(cmd, strings.Split(names, ":"), files)
	return cmd
}

// TestSocketActivation: serve takes its API and diagnostic listeners from
// sockets passed to it (systemd:NAME), already bound and listening before
// it started — no port is ever free between — and serves on them.
func TestSocketActivation(t *testing.T) {
	api, apiFile := harness.ListeningSocket(t)
	diag, diagFile := harness.ListeningSocket(t)
	db := filepath.Join(t.TempDir(), "permatrix.db")
	cmd := activate(t, "api:diagnostic", []*os.File{apiFile, diagFile}, nil,
		"--addr", "systemd:api", "--diagnostic-addr", "systemd:diagnostic", "--db", db, "--admin-token", token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	serving := make(chan map[string]any, 1)
	logs := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "serving" {
				serving <- rec
			}
		}
		logs <- all.String()
	}()
	select {
	case rec := <-serving:
		if rec["addr"] != api || rec["diagnostic_addr"] != diag {
			t.Errorf("serving on %v and %v, want the passed sockets %s and %s", rec["addr"], rec["diagnostic_addr"], api, diag)
		}
	case l := <-logs:
		t.Fatalf("serve exited:\n%s", l)
	case <-time.After(60 * time.Second): // a guard only
		t.Fatal("serve did not start")
	}
	get := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(diag, "/health/ready"); code != 200 {
		t.Errorf("diagnostic /health/ready: %d %s", code, body)
	}
	if code, body := get(diag, "/metrics"); code != 200 || !strings.Contains(body, "permatrix_store_revision") {
		t.Errorf("diagnostic /metrics: %d %.200s", code, body)
	}
	resp, err := http.Post("http://"+api+"/v1/check", "application/json",
		strings.NewReader(`{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"allow":false`) {
		t.Errorf("a check on the passed API socket: %d %s", resp.StatusCode, body)
	}
}

// TestSocketActivationRefused: an address systemd:NAME with no such socket
// passed — none at all, one of another name, sockets meant for another
// process (LISTEN_PID) — stops serve with an error saying which, before it
// serves anything.
func TestSocketActivationRefused(t *testing.T) {
	_, f := harness.ListeningSocket(t)
	db := filepath.Join(t.TempDir(), "permatrix.db")
	for _, c := range []struct {
		name  string
		cmd   *exec.Cmd
		wants string
	}{
		{"none passed", command(t, "serve", "--addr", "systemd:api", "--db", db, "--admin-token", token), "LISTEN_FDS is not set"},
		{"another name", activate(t, "web", []*os.File{f}, nil, "--addr", "systemd:api", "--db", db, "--admin-token", token), `no socket of that name was passed (LISTEN_FDNAMES "web")`},
		{"two, none named", activate(t, "a:b", []*os.File{f, f}, nil, "--addr", "systemd:", "--db", db, "--admin-token", token), "2 sockets were passed"},
		{"another process's", command(t, "serve", "--addr", "systemd:api", "--db", db, "--admin-token", token), "are for process"},
	} {
		if c.name == "another process's" {
			c.cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=api")
			c.cmd.ExtraFiles = []*os.File{f}
		}
		out, err := c.cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.wants) {
			t.Errorf("%s: %v, want an error saying %q:\n%s", c.name, err, c.wants, out)
		}
	}
}

// TestSocketActivationRefusesUnusedSockets: a socket passed to serve that
// no address names — a socket unit's extra socket, or one whose name is
// misspelt in the unit or the flag — stops serve with an error naming it,
// before it serves: the kernel would queue connections to it that nothing
// ever answers (closing it would not help: systemd keeps its own copy
// open). Before, serve served on the others and said nothing.
func TestSocketActivationRefusesUnusedSockets(t *testing.T) {
	_, api := harness.ListeningSocket(t)
	_, extra := harness.ListeningSocket(t)
	_, other := harness.ListeningSocket(t)
	db := filepath.Join(t.TempDir(), "permatrix.db")
	for _, c := range []struct {
		name, names string
		files       []*os.File
		args        []string
		wants       []string
	}{
		{"a misspelt diagnostic socket", "api:diagnostc", []*os.File{api, extra}, []string{"--addr", "systemd:api"},
			[]string{`fd 4 "diagnostc"`}},
		{"two unused, one unnamed", "api::grpc", []*os.File{api, extra, other}, []string{"--addr", "systemd:api"},
			[]string{`fd 4 ""`, `fd 5 "grpc"`}},
		{"no address takes a passed socket", "api", []*os.File{api}, []string{"--addr", "127.0.0.1:0"},
			[]string{`fd 3 "api"`}},
	} {
		cmd := activate(t, c.names, c.files, nil, append(c.args, "--db", db, "--admin-token", token)...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		select {
		case err = <-exited:
		case <-time.After(60 * time.Second): // a guard only: serving, it never exits
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s: serve is still running after 60s:\n%s", c.name, out.String())
			continue
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: %v, want exit 2:\n%s", c.name, err, out.String())
		}
		for _, w := range append(c.wants, "no address names") {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: the error does not say %q:\n%s", c.name, w, out.String())
			}
		}
		if strings.Contains(out.String(), `"msg":"serving"`) {
			t.Errorf("%s: serve said it serves:\n%s", c.name, out.String())
		}
	}
}
