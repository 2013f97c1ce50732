package authoring_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

const token = "authoring-token"

// server is a running `permatrix serve`.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// serve starts `permatrix serve` with args on a free port and a new db
// (unless args give --db) and waits for its "serving" line. It fails the
// test if serve exits first, unless wantExit, in which case it returns the
// server with done closed and the logs.
func serve(t *testing.T, args ...string) *server {
	t.Helper()
	s, err := startServe(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Logs())
	}
	return s
}

func startServe(t *testing.T, args ...string) (*server, error) {
	t.Helper()
	full := append([]string{"serve", "--addr", "127.0.0.1:0", "--admin-token", token}, args...)
	if !strings.Contains(strings.Join(args, " "), "--db") {
		full = append(full, "--db", filepath.Join(t.TempDir(), "permatrix.db"))
	}
	cmd := exec.Command(bin, full...)
	cmd.Dir = harness.Root()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
				addr <- rec["addr"].(string)
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		s.url = "http://" + a
		return s, nil
	case err := <-s.done:
		return s, &exitErr{err}
	case <-time.After(30 * time.Second):
		return s, &exitErr{nil}
	}
}

type exitErr struct{ err error }

func (e *exitErr) Error() string {
	if e.err == nil {
		return "serve did not start within 30s"
	}
	return "serve exited: " + e.err.Error()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve exit after SIGTERM: %v\n%s", err, s.Logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func (s *server) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (s *server) assign(t *testing.T, body string) {
	t.Helper()
	if code, raw := s.do(t, "POST", "/v1/assignments", body); code != 201 {
		t.Fatalf("assign %s: %d %s", body, code, raw)
	}
}

// allowed asks /v1/check and returns allow; anything but 200 fails.
func (s *server) allowed(t *testing.T, check string) bool {
	t.Helper()
	code, raw := s.do(t, "POST", "/v1/check", check)
	if code != 200 {
		t.Fatalf("check %s: %d %s", check, code, raw)
	}
	var d struct{ Allow bool }
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d.Allow
}

// eventually polls cond every 50ms for up to 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// demoLayout writes a bundle directory laid out like the repository: the
// repository's own entrypoints, library and write rules (policies/permatrix)
// plus a small "demo" system whose policy the tests edit, so that they do
// not depend on any vendor's policy.
func demoLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(harness.Root(), "policies", "permatrix")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return copyFile(p, filepath.Join(dir, "policies", "permatrix", rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "data", "systems", "demo", "data.json"), demoCatalog)
	write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), demoPolicy(`{"read"}`))
	return dir
}

const demoCatalog = `{
  "name": "Demo", "vendor": "test", "package": "demo", "documents": [],
  "scope_types": ["service", "project"], "context_keys": {},
  "roles": {
    "viewer": {"name": "Viewer", "scopes": ["service", "project"]},
    "editor": {"name": "Editor", "scopes": ["service", "project"]}
  },
  "permissions": {},
  "actions": {
    "read": {"scopes": ["service", "project"]},
    "write": {"scopes": ["service", "project"]}
  },
  "custom_roles": false
}
`

// demoPolicy is the demo system's policy; viewer is what a viewer may do.
func demoPolicy(viewer string) string {
	return `package permatrix.systems.demo

import data.permatrix.lib

allowed := {"viewer": ` + viewer + `, "editor": {"read", "write"}}

reasons contains lib.reason(g) if {
	some g in lib.grants
	g.system == "demo"
	input.action in allowed[g.role]
	lib.covers(g.scope, lib.scope)
}

missing contains lib.missing_role("demo", "editor", lib.scope) if count(reasons) == 0

decision := lib.verdict(reasons, missing)
`
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write and rename, as editors do, so the watcher never reads half a file.
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		return copyFile(p, filepath.Join(to, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}
