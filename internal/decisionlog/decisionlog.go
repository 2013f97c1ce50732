// Package decisionlog writes permatrix's decision log: one JSON object per
// line (decision_id, timestamp, input, result, store and bundle revisions)
// to a file or stdout. `permatrix replay` reads it back.
//
// OPA's decision-log plugin ships logs to a remote service or to its console
// logger through its plugin manager; permatrix needs neither, only a local
// JSON-lines file, so this is a small buffered writer instead.
package decisionlog

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"

	"github.com/permatrix/permatrix/internal/pdp"
)

// Writer appends entries as JSON lines. Lines are buffered and flushed at
// least every FlushInterval and on Close.
type Writer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer
	enc    *json.Encoder
	done   chan struct{}
	wg     sync.WaitGroup
}

// FlushInterval bounds how long a logged decision sits in the buffer.
const FlushInterval = time.Second

// Open opens path for appending ("-" is stdout).
func Open(path string) (*Writer, error) {
	if path == "-" {
		return newWriter(os.Stdout, nil), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return newWriter(f, f), nil
}

func newWriter(w io.Writer, c io.Closer) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	lw := &Writer{w: bw, closer: c, enc: json.NewEncoder(bw), done: make(chan struct{})}
	lw.wg.Add(1)
	go lw.flushLoop()
	return lw
}

func (l *Writer) flushLoop() {
	defer l.wg.Done()
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			_ = l.w.Flush()
			l.mu.Unlock()
		case <-l.done:
			return
		}
	}
}

// LogDecision appends one entry.
func (l *Writer) LogDecision(e pdp.DecisionLogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(e)
}

// Close flushes and closes the log.
func (l *Writer) Close() error {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if l.closer != nil {
		if cerr := l.closer.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Read decodes every entry of a decision log.
func Read(r io.Reader) ([]pdp.DecisionLogEntry, error) {
	var out []pdp.DecisionLogEntry
	dec := json.NewDecoder(r)
	for {
		var e pdp.DecisionLogEntry
		if err := dec.Decode(&e); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}
