package opa

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// Bounds of PrintLog: at most printBurst lines in any printWindow, each
// at most printBytes of text (print(input) prints what a client sent).
const (
	printBurst  = 100
	printWindow = time.Second
	printBytes  = 4 << 10
)

// PrintLog is a print hook (WithPrintHook) that writes print() to log, as
// `opa run --server` writes it to its own: each line at info, msg "print",
// with the call's location (file:row) and the text. It is bounded: at most
// 100 lines a second, 4 KiB of text each (a longer one is cut, and says
// its length: truncated); the lines over the bound are dropped, and the next
// line written says how many were (dropped). A policy that prints in a
// loop costs its formatting, not the log.
func PrintLog(log *slog.Logger) print.Hook { return &printLog{log: log} }

type printLog struct {
	log *slog.Logger

	mu      sync.Mutex
	start   time.Time // of the current window
	written int       // lines written in it
	dropped int       // lines dropped since the last line written
}

func (p *printLog) Print(ctx print.Context, msg string) error {
	now := time.Now()
	p.mu.Lock()
	if now.Sub(p.start) >= printWindow {
		p.start, p.written = now, 0
	}
	if p.written >= printBurst {
		p.dropped++
		p.mu.Unlock()
		return nil
	}
	p.written++
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	attrs := make([]slog.Attr, 0, 3)
	if ctx.Location != nil {
		attrs = append(attrs, slog.String("location", ctx.Location.String()))
	}
	if len(msg) > printBytes {
		attrs = append(attrs, slog.Int("truncated", len(msg)))
		msg = strings.ToValidUTF8(msg[:printBytes], "")
	}
	attrs = append(attrs, slog.String("text", msg))
	if dropped > 0 {
		attrs = append(attrs, slog.Int("dropped", dropped))
	}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "print", attrs...)
	return nil
}
