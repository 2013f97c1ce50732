package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// progress reports a long job (store copy, import): on a terminal, one line
// rewritten in place with the count, the rate and the time left; otherwise a
// plain log line every logEvery.
type progress struct {
	what     string
	total    int // 0: unknown
	start    time.Time
	tty      bool
	out      io.Writer
	log      *slog.Logger
	logEvery time.Duration

	mu   sync.Mutex
	done int
	last time.Time
}

func newProgress(what string, total int, log *slog.Logger) *progress {
	return &progress{what: what, total: total, start: time.Now(), out: os.Stderr, log: log, logEvery: 5 * time.Second,
		tty: isatty.IsTerminal(os.Stderr.Fd())}
}

// add counts n more done and reports if it is time to.
func (p *progress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := time.Now()
	every := p.logEvery
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.report(false)
}

// finish reports the end.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(true)
}

func (p *progress) report(final bool) {
	elapsed := time.Since(p.start)
	rate := float64(p.done) / max(elapsed.Seconds(), 1e-9)
	eta := "?"
	if p.total > 0 && rate > 0 {
		eta = time.Duration(float64(max(p.total-p.done, 0)) / rate * float64(time.Second)).Round(time.Second).String()
	}
	if p.tty {
		of := ""
		if p.total > 0 {
			of = fmt.Sprintf("/%d", p.total)
		}
		fmt.Fprintf(p.out, "\r%s: %d%s (%.0f/s, %s left)   ", p.what, p.done, of, rate, eta)
		if final {
			fmt.Fprintf(p.out, "\r%s: %d in %s (%.0f/s)            \n", p.what, p.done, elapsed.Round(time.Millisecond), rate)
		}
		return
	}
	attrs := []any{"done", p.done, "per_second", int(math.Round(rate)), "elapsed", elapsed.Round(time.Millisecond).String()}
	if p.total > 0 {
		attrs = append(attrs, "total", p.total, "eta", eta)
	}
	if final {
		p.log.Info(p.what+": finished", attrs...)
	} else {
		p.log.Info(p.what, attrs...)
	}
}
