// Package cli_test runs the real permatrix binary: serve with flags from the
// environment, graceful shutdown, kill -9 durability, the db lock, and the
// check and version commands.
package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

var bin string

func TestMain(m *testing.M) { harness.MainWithBinary(m, &bin) }

const token = "cli-token"

type server struct{ *harness.Process }

// serve starts `permatrix serve` configured only through PERMATRIX_*
// variables and waits for its "serving" log line.
func serve(t *testing.T, db string, env ...string) *server {
	t.Helper()
	env = append([]string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + db, "PERMATRIX_ADMIN_TOKEN=" + token}, env...)
	p, err := harness.StartProcess(t, bin, token, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	return &server{p}
}

func (s *server) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, raw := s.Do(t, method, path, body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return code, m
}

func assignment(user string) string {
	return fmt.Sprintf(`{"subject":"user:%s","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`, user)
}

// command is the binary with args, given at most three minutes: a hung
// command gets SIGQUIT, so that the Go runtime dumps its goroutines into
// the output and the test says where it hung instead of timing out.
func command(t testing.TB, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := command(t, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestServeFromEnvAndGracefulShutdown(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	s := serve(t, db)
	if code, _ := s.do(t, "GET", "/health", ""); code != 200 {
		t.Fatalf("health %d", code)
	}
	if code, _ := s.do(t, "POST", "/v1/assignments", assignment("ann")); code != 201 {
		t.Fatalf("assign %d", code)
	}
	s.Stop(t)
	if !strings.Contains(s.Logs(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", s.Logs())
	}
	// The db was closed cleanly: check can open it, and the write is there.
	out, code := run(t, "check", "--db", db, "--subject", "ann", "--system", "celonis-task-mining", "--action", "edit_users")
	if code != 0 || !strings.Contains(out, `"allow": true`) {
		t.Fatalf("check after restart: exit %d\n%s", code, out)
	}
}

func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	s := serve(t, db)
	var acked []string
	for i := range 30 {
		code, body := s.do(t, "POST", "/v1/assignments", assignment(fmt.Sprintf("k%d", i)))
		if code != 201 {
			t.Fatalf("assign %d: %d", i, code)
		}
		acked = append(acked, body["id"].(string))
	}
	if err := s.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	s2 := serve(t, db)
	code, exp := s2.do(t, "GET", "/v1/export", "")
	if code != 200 {
		t.Fatalf("export %d", code)
	}
	st := exp["store"].(map[string]any)
	if st["revision"].(float64) != 30 {
		t.Fatalf("revision after kill -9: %v", st["revision"])
	}
	for _, id := range acked {
		if code, _ := s2.do(t, "GET", "/v1/assignments/"+id, ""); code != 200 {
			t.Fatalf("acknowledged assignment %s lost after kill -9 (GET: %d)", id, code)
		}
	}
}

func TestSecondProcessGetsLockedError(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	serve(t, db)
	start := time.Now()
	out, code := run(t, "check", "--db", db, "--subject", "a", "--system", "celonis-task-mining", "--action", "edit_users")
	if code != 2 || !strings.Contains(out, "locked by another process") || !strings.Contains(out, "--server") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to report the lock", d)
	}
}

// check --db suggests --server only when the file is locked: a damaged
// file, or one that is not a store, is not about a running server.
func TestCheckDBHintOnlyWhenLocked(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"empty":   {},
		"garbage": []byte(strings.Repeat("not a bbolt file\n", 4096)),
	} {
		db := filepath.Join(dir, name+".db")
		if err := os.WriteFile(db, content, 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := run(t, "check", "--db", db, "--subject", "a", "--system", "celonis-task-mining", "--action", "edit_users")
		if code != 2 || strings.Contains(out, "server running") || strings.Contains(out, "--server") {
			t.Errorf("%s: exit %d, want 2 without the --server hint:\n%s", name, code, out)
		}
	}
}

// check and replay read a --db file: a mistyped path is an error (exit 2,
// naming the path), not a new empty store created there whose every answer
// is a deny (check exited 1, "allow": false, and left a 16 MiB file).
func TestReadCommandsNeedAnExistingDB(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	log := filepath.Join(dir, "decisions.log")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"check":  {"check", "--db", missing, "--subject", "ann", "--system", "celonis-task-mining", "--action", "edit_users"},
		"replay": {"replay", "--decisions", log, "--db", missing},
	} {
		out, code := run(t, args...)
		if code != 2 || !strings.Contains(out, missing) {
			t.Errorf("%s --db %s: want exit 2 naming the file, got exit %d\n%s", name, missing, code, out)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("%s created %s", name, missing)
			os.Remove(missing)
		}
	}
}

// check and replay only read a --db file: they leave it byte for byte as
// it was (opening it wrote a bbolt transaction, a new meta page), and they
// read one on a read-only file system — a backup volume, a snapshot —
// (they failed with "read-only file system (is a server running on it?)").
func TestReadCommandsOnlyRead(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	s := serve(t, db)
	if code, _ := s.do(t, "POST", "/v1/assignments", assignment("ann")); code != 201 {
		t.Fatalf("assign %d", code)
	}
	s.Stop(t)
	log := filepath.Join(dir, "decisions.log")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	commands := func(db string) map[string][]string {
		return map[string][]string{
			"check":  {"check", "--db", db, "--subject", "ann", "--system", "celonis-task-mining", "--action", "edit_users", "--resource-type", "project", "--resource-id", "p1"},
			"replay": {"replay", "--decisions", log, "--db", db},
		}
	}
	for name, args := range commands(db) {
		if out, code := run(t, args...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, code, out)
		}
		if after, _ := os.ReadFile(db); string(after) != string(before) {
			t.Errorf("%s --db changed the store file", name)
		}
	}
	// The same file on a read-only mount of its directory.
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(dir, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("a read-only bind mount needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
	if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	for name, args := range commands(filepath.Join(ro, "p.db")) {
		if out, code := run(t, args...); code != 0 {
			t.Errorf("%s on a read-only file system: exit %d\n%s", name, code, out)
		}
	}
}

func TestCheckCommandAgainstServer(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "p.db"))
	s.do(t, "POST", "/v1/assignments", assignment("ann"))
	out, code := run(t, "check", "--server", s.URL, "--subject", "ann", "--system", "celonis-task-mining", "--action", "edit_users", "--resource-type", "project", "--resource-id", "p1")
	if code != 0 || !strings.Contains(out, `"allow": true`) {
		t.Fatalf("allow: exit %d\n%s", code, out)
	}
	out, code = run(t, "check", "--server", s.URL, "--subject", "bob", "--system", "celonis-task-mining", "--action", "edit_users")
	if code != 1 || !strings.Contains(out, `"allow": false`) || !strings.Contains(out, "missing") {
		t.Fatalf("deny: exit %d\n%s", code, out)
	}
	out, code = run(t, "check", "--server", s.URL, "--subject", "bob", "--system", "nope", "--action", "x")
	if code != 2 || !strings.Contains(out, "unknown system") {
		t.Fatalf("error: exit %d\n%s", code, out)
	}
	// A resource id without its type is a mistake, not a check at service
	// scope that drops the id.
	out, code = run(t, "check", "--server", s.URL, "--subject", "ann", "--system", "celonis-task-mining", "--action", "edit_users", "--resource-id", "p1")
	if code != 2 || !strings.Contains(out, "--resource-type") {
		t.Fatalf("--resource-id without --resource-type: exit %d\n%s", code, out)
	}
}

func TestBadFlagsFromEnv(t *testing.T) {
	cmd := command(t, "serve")
	cmd.Env = append(os.Environ(), "PERMATRIX_LOG_LEVEL=loud", "PERMATRIX_DB="+filepath.Join(t.TempDir(), "x.db"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--log-level") {
		t.Fatalf("want a clear error: %v\n%s", err, out)
	}
	cmd = command(t, "serve", "--bundle", filepath.Join(t.TempDir(), "missing"))
	cmd.Env = append(os.Environ(), "PERMATRIX_DB="+filepath.Join(t.TempDir(), "y.db"))
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "missing") {
		t.Fatalf("missing bundle: %v\n%s", err, out)
	}
	// A configuration file that cannot be read is named with its flag
	// (it said only "open …: no such file or directory").
	cmd = command(t, "serve", "--config", filepath.Join(t.TempDir(), "nonexist.yaml"))
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nonexist.yaml (--config): no such file or directory") {
		t.Fatalf("missing --config file: %v\n%s", err, out)
	}
	// An unknown evaluator stops serve before it opens the store.
	db := filepath.Join(t.TempDir(), "z.db")
	cmd = command(t, "serve", "--evaluator", "wasm")
	cmd.Env = append(os.Environ(), "PERMATRIX_DB="+db)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown evaluator "wasm"`) {
		t.Fatalf("unknown evaluator: %v\n%s", err, out)
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("serve created the store before refusing its flags")
	}
	// A limit or a wait of 0 or less is refused, not silently replaced by
	// the default (a --body-limit 0 served 1 MiB bodies).
	for _, env := range []string{"PERMATRIX_BODY_LIMIT=0", "PERMATRIX_BODY_LIMIT=-1", "PERMATRIX_CONSISTENCY_TIMEOUT=0s", "PERMATRIX_CONSISTENCY_TIMEOUT=-1s"} {
		// A serve that takes the value runs: 20 seconds is plenty to refuse.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd = exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), env, "PERMATRIX_DB="+db)
		out, err = cmd.CombinedOutput()
		flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(strings.Split(env, "=")[0], "PERMATRIX_")), "_", "-")
		if err == nil || !strings.Contains(string(out), flag) {
			t.Errorf("%s: want an error naming %s: %v\n%s", env, flag, err, out)
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("%s: serve created the store before refusing its flags", env)
			os.Remove(db)
		}
	}
}

// --default-decision (here PERMATRIX_DEFAULT_DECISION) is what POST /
// answers; /v1/config shows the effective settings without the admin token.
func TestDefaultDecisionAndConfig(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "p.db"), "PERMATRIX_DEFAULT_DECISION=permatrix/decision")
	code, m := s.do(t, "POST", "/", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`)
	if code != 200 || m["allow"] != false || m["missing"] == nil {
		t.Fatalf("POST /: %d %v", code, m)
	}
	code, raw := s.Do(t, "GET", "/v1/config", "")
	var cfg struct{ Result map[string]any }
	if err := json.Unmarshal(raw, &cfg); err != nil || code != 200 || cfg.Result["default_decision"] != "/permatrix/decision" ||
		strings.Contains(string(raw), token) || cfg.Result["permatrix"].(map[string]any)["db"] == nil {
		t.Fatalf("config: %d %s", code, raw)
	}
	// The admin token is in serve's environment: opa.runtime() (which in
	// stock OPA holds the environment) shows nothing of it.
	code, raw = s.Do(t, "GET", "/v1/query?q="+url.QueryEscape("x := opa.runtime()"), "")
	if code != 200 || strings.Contains(string(raw), token) || strings.TrimSpace(string(raw)) != `{"result":[{"x":{}}]}` {
		t.Fatalf("opa.runtime(): %d %s", code, raw)
	}
	s.Stop(t)

	cmd := command(t, "serve", "--default-decision", "a//b")
	cmd.Env = append(os.Environ(), "PERMATRIX_DB="+filepath.Join(t.TempDir(), "z.db"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--default-decision") {
		t.Fatalf("bad default decision: %v\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	out, code := run(t, "version")
	if code != 0 || !strings.Contains(out, "opa v1.22.2") && !strings.Contains(out, "opa 1.22.2") {
		t.Fatalf("version: %d %s", code, out)
	}
}

func TestDecisionLog(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.log")
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_DECISION_LOG="+logPath)
	s.do(t, "POST", "/v1/assignments", assignment("ann"))
	_, allowed := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`)
	_, denied := s.do(t, "POST", "/v1/check", `{"subject":"bob","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`)
	_, health := s.do(t, "GET", "/health?bundles", "")
	s.Stop(t) // flushes the log
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 decisions logged, got %d:\n%s", len(lines), raw)
	}
	bundleRev := health["bundles"].(map[string]any)["permatrix"].(map[string]any)["revision"]
	for i, want := range []map[string]any{allowed, denied} {
		var e map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil {
			t.Fatal(err)
		}
		result := e["result"].(map[string]any)
		bundles := e["bundles"].(map[string]any)["permatrix"].(map[string]any)
		if e["decision_id"] != want["decision_id"] || result["allow"] != want["allow"] || e["path"] != "permatrix/decision" ||
			e["custom"].(map[string]any)["store_revision"].(float64) != 1 || bundles["revision"] != bundleRev ||
			e["labels"].(map[string]any)["id"] == nil || e["req_id"] == nil ||
			e["input"].(map[string]any)["system"] != "celonis-task-mining" || e["timestamp"] == nil {
			t.Fatalf("line %d %s does not match the answer %v (bundle %v)", i+1, lines[i], want, bundleRev)
		}
	}
}

// SIGTERM right after startup (before the first request) still stops serve:
// Shutdown must not race the server's creation.
func TestImmediateSIGTERM(t *testing.T) {
	for i := range 5 {
		s := serve(t, filepath.Join(t.TempDir(), fmt.Sprintf("p%d.db", i)))
		s.Stop(t)
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveOnFree starts serve with the environment env makes of n free
// loopback addresses. They are found free and then given to serve: another
// test process (go test runs packages side by side) may take one in
// between, and serve exits (address in use) — it is started again on
// other addresses then.
func serveOnFree(t *testing.T, n int, env func(addrs []string) []string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = freeAddr(t)
		}
		p, err := harness.StartProcess(t, bin, token, env(addrs))
		if err == nil {
			return &server{p}
		}
		if attempt == 5 || !strings.Contains(p.Logs(), "address already in use") {
			t.Fatalf("%v\n%s", err, p.Logs())
		}
		t.Logf("serve on %v: an address was taken meanwhile; again on others", addrs)
	}
}

// runEnv runs the binary with env added and returns stdout, stderr and the
// exit code.
func runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := command(t, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// `permatrix health` exits 0 when the server is ready and 1 otherwise,
// reading serve's own PERMATRIX_ADDR / PERMATRIX_DIAGNOSTIC_ADDR the way a
// container's HEALTHCHECK runs it (Dockerfile), or --url.
func TestHealthCommand(t *testing.T) {
	var port, diag string
	var env []string
	s := serveOnFree(t, 2, func(addrs []string) []string {
		_, port, _ = net.SplitHostPort(addrs[0])
		diag = addrs[1]
		env = []string{"PERMATRIX_ADDR=0.0.0.0:" + port, "PERMATRIX_DIAGNOSTIC_ADDR=" + diag}
		return append([]string{"PERMATRIX_DB=" + filepath.Join(t.TempDir(), "p.db"), "PERMATRIX_ADMIN_TOKEN=" + token}, env...)
	})

	for name, e := range map[string][]string{
		"the diagnostic listener, from the environment": env,
		"the API's wildcard address, on loopback":       {"PERMATRIX_ADDR=0.0.0.0:" + port},
	} {
		out, errOut, code := runEnv(t, e, "health")
		if code != 0 || !strings.HasPrefix(out, "ready: ") {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, errOut)
		}
	}
	for _, u := range []string{s.URL, "http://" + diag + "/health/ready"} {
		if out, errOut, code := runEnv(t, nil, "health", "--url", u); code != 0 {
			t.Errorf("--url %s: exit %d\n%s%s", u, code, out, errOut)
		}
	}

	// A server that accepts but never answers: not ready after --timeout.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	start := time.Now()
	_, errOut, code := runEnv(t, nil, "health", "--url", "http://"+hung.Addr().String(), "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "deadline") && !strings.Contains(errOut, "Timeout") {
		t.Errorf("hung server: exit %d\n%s", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hung server: took %v with --timeout 300ms", d)
	}
	// Usage errors are 2 (never a healthy 0).
	if _, errOut, code := runEnv(t, nil, "health", "--url", "127.0.0.1:8181"); code != 2 || !strings.Contains(errOut, "--url") {
		t.Errorf("bad --url: exit %d\n%s", code, errOut)
	}

	// Stopped: not ready, at once. The addresses serve gave up could be
	// taken by another test process before health dials them (one
	// answering made this 'EOF', or a permatrix's 'ready'); what a client
	// of a stopped server meets, a refused connection, is made sure of on
	// ports held bound and not listening.
	s.Stop(t)
	apiPort, diagPort := harness.ReservePort(t), harness.ReservePort(t)
	_, reservedPort, _ := net.SplitHostPort(apiPort.Addr)
	stopped := []string{"PERMATRIX_ADDR=0.0.0.0:" + reservedPort, "PERMATRIX_DIAGNOSTIC_ADDR=" + diagPort.Addr}
	_, errOut, code = runEnv(t, stopped, "health")
	if code != 1 || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, diagPort.Addr) {
		t.Errorf("stopped server: exit %d\n%s", code, errOut)
	}

	// The API on a unix socket, the address from the environment.
	dir, err := os.MkdirTemp("", "pmx") // socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := []string{"PERMATRIX_ADDR=unix://" + filepath.Join(dir, "p.sock")}
	u := serve(t, filepath.Join(t.TempDir(), "u.db"), sock...)
	if out, errOut, code := runEnv(t, sock, "health"); code != 0 || !strings.Contains(out, "unix://") {
		t.Errorf("unix socket: exit %d\n%s%s", code, out, errOut)
	}
	u.Stop(t)
	if _, _, code := runEnv(t, sock, "health"); code != 1 {
		t.Errorf("unix socket, stopped: exit %d", code)
	}
}

// --admin-token-file (here PERMATRIX_ADMIN_TOKEN_FILE): the file's trailing
// newline is not part of the token; a file with nothing in it, one that
// cannot be read, and a token no Authorization header can carry (a second
// line, a control character) stop serve with the flag named, before the
// store is opened, instead of serving an admin API nobody can use.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := harness.StartProcess(t, bin, "tok", []string{"PERMATRIX_ADDR=127.0.0.1:0",
		"PERMATRIX_DB=" + filepath.Join(dir, "ok.db"), "PERMATRIX_ADMIN_TOKEN_FILE=" + file("newline", "tok\n")})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	if code, raw := p.Do(t, "POST", "/v1/assignments", assignment("ann")); code != 201 {
		t.Fatalf("the token of a file ending in a newline: %d %s", code, raw)
	}
	p.Stop(t)

	for name, args := range map[string][]string{
		"empty":          {"--admin-token-file", file("empty", "")},
		"blank":          {"--admin-token-file", file("blank", " \n\n")},
		"missing":        {"--admin-token-file", filepath.Join(dir, "missing")},
		"a directory":    {"--admin-token-file", dir},
		"two lines":      {"--admin-token-file", file("two", "tok\nsecond\n")},
		"a control char": {"--admin-token-file", file("ctl", "to\x00k\n")},
		"flag newline":   {"--admin-token", "tok\nsecond"},
		"flag trailing":  {"--admin-token", "tok "},
	} {
		db := filepath.Join(dir, "never.db")
		// A serve that takes the token runs: 20 seconds is plenty to refuse.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, args...)...)
		cmd.Env = append(os.Environ(), "PERMATRIX_ADMIN_TOKEN=", "PERMATRIX_ADMIN_TOKEN_FILE=")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), args[0]) {
			t.Errorf("%s: want exit 2 naming %s: %v\n%s", name, args[0], err, out)
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("%s: serve opened the store before refusing the token", name)
			os.Remove(db)
		}
	}
}

// replay run inside a sidecar (kubectl exec), whose environment configures
// serve: PERMATRIX_STORE (serve's store URL) is not replay's --store
// (current|logged), PERMATRIX_BUNDLE (the bundle serve serves) is not
// replay's candidate --bundle, and the --store-export given on the command line beats
// the PERMATRIX_DB of the environment, as a flag beats the environment.
func TestReplayInASidecarsEnvironment(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	s := serve(t, db)
	s.do(t, "POST", "/v1/assignments", assignment("ann"))
	code, export := s.Do(t, "GET", "/v1/export", "")
	if code != 200 {
		t.Fatalf("export: %d %s", code, export)
	}
	s.Stop(t)
	exportFile, log := filepath.Join(dir, "export.json"), filepath.Join(dir, "decisions.log")
	if err := os.WriteFile(exportFile, export, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ env, args []string }{
		"a fleet sidecar's PERMATRIX_STORE": {[]string{"PERMATRIX_STORE=etcds://etcd-0:2379/orders"}, []string{"--db", db}},
		"the sidecar's PERMATRIX_DB":        {[]string{"PERMATRIX_DB=" + filepath.Join(dir, "serving.db")}, []string{"--store-export", exportFile}},
		// serve's bundle is not replay's candidate (the embedded one
		// unless --bundle is given): it was, and replay compared the
		// serving bundle with itself (or failed to find it).
		"the sidecar's PERMATRIX_BUNDLE": {[]string{"PERMATRIX_BUNDLE=" + filepath.Join(dir, "serving.tar.gz")}, []string{"--db", db}},
	} {
		out, errOut, code := runEnv(t, c.env, append([]string{"replay", "--decisions", log}, c.args...)...)
		if code != 0 || !strings.Contains(out, "no decision would flip") {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, errOut)
		}
	}
	// Both on the command line are still one too many.
	if _, errOut, code := runEnv(t, nil, "replay", "--decisions", log, "--db", db, "--store-export", exportFile); code != 2 || !strings.Contains(errOut, "give one of") {
		t.Errorf("--db and --store-export: exit %d\n%s", code, errOut)
	}
}
