package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EtcdCluster is a real etcd cluster of separate processes on loopback.
type EtcdCluster struct {
	Members []*EtcdMember
	bin     string
	token   string
	initial string
	extra   []string // the flags every member was started with
	held    []int    // sockets holding the members' ports (holdPort)
}

// EtcdMember is one etcd process.
type EtcdMember struct {
	Name      string
	ClientURL string
	PeerURL   string
	DataDir   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *outputTail
	done chan struct{}
}

// outputTail keeps the last max to 2*max bytes written to it: an etcd member's output,
// which under large transactions (imports) logs each slow request whole.
type outputTail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *outputTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max { // trimmed now and then, not on every write
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *outputTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Endpoints are the members' client addresses, host:port, comma-separated
// (what an etcd:// store URL takes).
func (c *EtcdCluster) Endpoints() string {
	var hs []string
	for _, m := range c.Members {
		hs = append(hs, strings.TrimPrefix(m.ClientURL, "http://"))
	}
	return strings.Join(hs, ",")
}

// StoreURL is the etcd:// store URL of the cluster with a key prefix.
func (c *EtcdCluster) StoreURL(prefix string) string {
	return "etcd://" + c.Endpoints() + "/" + prefix
}

// StartEtcdCluster starts an n-member cluster and waits until it has a
// leader; the members are killed when the test ends. extra flags go to every
// member.
func StartEtcdCluster(t testing.TB, n int, extra ...string) *EtcdCluster {
	t.Helper()
	c, err := NewEtcdCluster(t.TempDir(), n, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// NewEtcdCluster starts an n-member cluster with its data under dir and
// waits until it has a leader (for a TestMain: Close it when done).
//
// Its ports are found free and then given to etcd: between the two,
// another test process (go test runs packages side by side) may take one,
// and the member exits (address in use) — while the other process's etcd
// answers /health on that port, until its test ends and the cluster is
// gone under this one's. So every member must still be running once the
// cluster is healthy, or the cluster is started again on other ports.
func NewEtcdCluster(dir string, n int, extra ...string) (*EtcdCluster, error) {
	bin, err := BuildTool(filepath.Join("test", "tools", "etcd"), "etcd", "go.etcd.io/etcd/server/v3")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := startEtcdCluster(bin, filepath.Join(dir, fmt.Sprintf("try%d", attempt)), n, extra)
		if err == nil || !errors.Is(err, errMemberExited) || attempt == 5 {
			return c, err
		}
	}
}

// errMemberExited is a member gone before its cluster was up.
var errMemberExited = errors.New("an etcd member exited while the cluster was starting")

func startEtcdCluster(bin, dir string, n int, extra []string) (*EtcdCluster, error) {
	c := &EtcdCluster{bin: bin, token: fmt.Sprintf("permatrix-test-%d", time.Now().UnixNano()), extra: extra}
	var initial []string
	for i := range n {
		m := &EtcdMember{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", c.holdPort()),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", c.holdPort()),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")
	for _, m := range c.Members {
		if err := c.start(m, "new", extra); err != nil {
			c.Close()
			return nil, err
		}
	}
	err := c.WaitHealthy(60 * time.Second)
	for _, m := range c.Members {
		if err == nil && !m.Running() {
			err = fmt.Errorf("%w: %s", errMemberExited, m.Name)
		}
	}
	if err != nil {
		logs := c.Logs()
		c.Close()
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	return c, nil
}

// Close kills every member and gives its ports up.
func (c *EtcdCluster) Close() {
	for _, m := range c.Members {
		m.Kill()
	}
	for _, fd := range c.held {
		_ = syscall.Close(fd)
	}
	c.held = nil
}

// holdPort is a free loopback port held for the cluster's life (as
// HoldPort holds one for a test's): a member binds it beside the holding
// socket, and while a member is down (Kill, then Restart or Wipe on the
// same ports) the kernel gives its ports to no other test process asking
// for a free one — which, found free once the member had exited, made
// the member's start again fail (address in use) or reach that process.
func (c *EtcdCluster) holdPort() int {
	fd, port, err := bindLoopback(0, true)
	if err != nil {
		panic(fmt.Sprintf("hold a port: %v", err))
	}
	c.held = append(c.held, fd)
	return port
}

func (c *EtcdCluster) start(m *EtcdMember, state string, extra []string) error {
	args := []string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initial, "--initial-cluster-state", state, "--initial-cluster-token", c.token,
		// A loaded two-core test machine: slower heartbeats than the
		// defaults keep elections from flapping.
		"--heartbeat-interval", "200", "--election-timeout", "2000",
		// etcd's own limits on a transaction (--max-txn-ops 128,
		// --max-request-bytes 1.5 MiB), as an operator's cluster has them
		// and a sidecar assumes them: a test that raises them passes the
		// flags in extra, and tells its sidecars.
		"--log-level", "warn",
	}
	cmd := exec.Command(c.bin, append(args, extra...)...)
	dieWithTest(cmd)
	logs := &outputTail{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.logs, m.done = cmd, logs, done
	m.mu.Unlock()
	return nil
}

// Kill sends SIGKILL to the member and waits for it to exit.
func (m *EtcdMember) Kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Running reports whether the member's process is up.
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Restart starts a killed member again on its data directory.
func (c *EtcdCluster) Restart(m *EtcdMember) error {
	m.Kill()
	return c.start(m, "existing", nil)
}

// Wipe kills every member, deletes its data and starts the cluster again
// from nothing on the same addresses, its revisions from 1 again: with
// the same configuration (newID false) it has the same cluster id — what
// an operator's cluster looks like after every member lost its disk, or a
// restore from a snapshot older than everything the sidecars have seen;
// with another --initial-cluster-token (newID), it is another cluster.
func (c *EtcdCluster) Wipe(newID bool) error {
	for _, m := range c.Members {
		m.Kill()
		if err := os.RemoveAll(m.DataDir); err != nil {
			return err
		}
	}
	if newID {
		c.token = fmt.Sprintf("permatrix-test-%d", time.Now().UnixNano())
	}
	for _, m := range c.Members {
		if err := c.start(m, "new", c.extra); err != nil {
			return err
		}
	}
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		return err
	}
	for _, m := range c.Members {
		if !m.Running() { // its address taken meanwhile (NewEtcdCluster)
			return fmt.Errorf("%w: %s\n%s", errMemberExited, m.Name, c.Logs())
		}
	}
	return nil
}

// WaitHealthy waits until every running member answers /health with a
// leader.
func (c *EtcdCluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
			resp, err := http.DefaultClient.Do(req)
			cancel()
			if err != nil || resp.StatusCode != 200 {
				ok = false
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd cluster not healthy after %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Logs are the members' outputs so far.
func (c *EtcdCluster) Logs() string {
	var b strings.Builder
	for _, m := range c.Members {
		m.mu.Lock()
		if m.logs != nil {
			fmt.Fprintf(&b, "--- %s\n%s", m.Name, m.logs.String())
		}
		m.mu.Unlock()
	}
	return b.String()
}
