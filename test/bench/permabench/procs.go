package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server the bench started; every one is stopped before the bench
// exits (stopAll), and dies with the bench (Pdeathsig) if it is killed.
type proc struct {
	name    string
	cmd     *exec.Cmd
	url     string
	started time.Time
	exited  chan struct{}
	err     error
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// freeAddr is a free loopback address.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc starts bin with args in dir, its output in logDir/name.log.
func startProc(name, dir, logDir, bin, addr string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitOK polls url until it answers 200; it returns the time since the
// process started.
func (p *proc) waitOK(path string, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if !p.running() {
			return 0, fmt.Errorf("%s exited before %s answered 200: %v (log: %s)", p.name, path, p.err, p.logTail())
		}
		resp, err := c.Get(p.url + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: %s not 200 after %s", p.name, path, timeout)
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.cmd.Stdout.(*os.File).Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits (SIGKILL after timeout); it returns how long
// the process took to exit.
func (p *proc) stop(timeout time.Duration) time.Duration {
	start := time.Now()
	if !p.running() {
		return 0
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return time.Since(start)
}

// stopAll stops every server still running.
func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, p := range procs {
		p.stop(20 * time.Second)
	}
}

// memory is a process's resident set (VmRSS), its peak (VmHWM) and the
// resident set's two parts: anonymous memory (RssAnon: the heap) and
// file-backed pages (RssFile: the binary and bbolt's memory map of the
// store file, which the kernel can drop and read again), in MiB.
type memory struct {
	RSS  float64 `json:"rss_mib"`
	HWM  float64 `json:"hwm_mib"`
	Anon float64 `json:"anon_mib"`
	File float64 `json:"file_mib"`
}

func (p *proc) memory() memory {
	var m memory
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			m.RSS = kb / 1024
		case "VmHWM:":
			m.HWM = kb / 1024
		case "RssAnon:":
			m.Anon = kb / 1024
		case "RssFile:":
			m.File = kb / 1024
		}
	}
	return m
}

// sampler records a process's largest VmRSS while it runs.
type sampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	first  memory
	peak   memory // the largest RSS and, apart, the largest RssAnon seen
}

func (p *proc) sample(every time.Duration) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{cancel: cancel, done: make(chan struct{}), first: p.memory()}
	s.peak = s.first
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m := p.memory()
				s.peak.RSS, s.peak.HWM = max(s.peak.RSS, m.RSS), max(s.peak.HWM, m.HWM)
				s.peak.Anon, s.peak.File = max(s.peak.Anon, m.Anon), max(s.peak.File, m.File)
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the memory at the start and the peaks.
func (s *sampler) stop() (first, peak memory) {
	s.cancel()
	<-s.done
	return s.first, s.peak
}

// run runs a command in dir, its output in logDir/name.log; an error
// carries the log's tail.
func run(name, dir, logDir string, env []string, bin string, args ...string) error {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, b)
	}
	return nil
}

var errSkipped = errors.New("skipped")

// pin sets the CPUs of every thread of process pid (taskset -a -p -c); new
// threads inherit them.
func pin(pid int, cpus string) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -p -c %s %d: %v: %s", cpus, pid, err, out)
	}
	return nil
}
