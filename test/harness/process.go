package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a `permatrix serve` started from the binary.
type Process struct {
	Cmd   *exec.Cmd
	URL   string
	Token string

	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

// StartProcess runs `bin serve args...` in the repository root with env
// added to the environment, and waits for its "serving" log line. The
// error says whether serve exited first or never started; the logs so far
// are in Logs either way. token is the admin token the caller configured.
func StartProcess(t testing.TB, bin, token string, env []string, args ...string) (*Process, error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	dieWithTest(cmd)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, Token: token, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
				addr <- rec["addr"].(string)
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		p.URL = "http://" + a
		return p, nil
	case err := <-p.done:
		if err == nil {
			err = errors.New("exit status 0")
		}
		return p, errors.New("serve exited: " + err.Error())
	case <-time.After(30 * time.Second):
		return p, errors.New("serve did not start within 30s")
	}
}

// processClient bounds each request: a server that stops answering fails
// the test with its logs instead of hanging the package until it times out.
var processClient = &http.Client{Timeout: 2 * time.Minute}

// Logs is what serve has written to stderr so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Done reports serve's exit.
func (p *Process) Done() <-chan error { return p.done }

// Stop sends SIGTERM and fails the test unless serve exits cleanly.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("serve exit after SIGTERM: %v\n%s", err, p.Logs())
		}
	case <-time.After(20 * time.Second):
		_ = p.Cmd.Process.Signal(syscall.SIGQUIT) // make the Go runtime dump its goroutines into the logs
		time.Sleep(time.Second)
		t.Fatalf("serve did not stop on SIGTERM within 20s; logs and goroutines:\n%s", p.Logs())
	}
}

// Do sends a request with the admin token and returns status and body.
func (p *Process) Do(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := processClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, p.Logs())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// Run runs a command in dir ("" is the repository root) and returns its
// stdout, stderr and exit code; failing to start it fails the test.
func Run(t testing.TB, dir, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = Root()
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}
