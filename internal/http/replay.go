package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/replay"
)

// Bounds of POST /v1/replay: the tail of the decision log it reads, so
// that one request's memory and time stay bounded whatever the log's size.
const (
	replayMaxBytes     = 8 << 20
	replayMaxDecisions = 5000
)

// POST /v1/replay with a .tar.gz bundle as the body: the server's own
// decision log (its last decisions) re-decided under that candidate and
// under the serving bundle, both over the store as it is now
// (internal/replay, as `permatrix replay --baseline`): the decisions the
// candidate alone would flip.
func (s *Server) replayCandidate(c echo.Context) error {
	if s.cfg.DecisionLogFile == "" {
		return permatrix.Errorf(permatrix.ECONFLICT, "the server keeps no decision log file to replay (serve --decision-log FILE)")
	}
	p := s.svc.Policy()
	if p == nil {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	b, release, err := s.candidateBundle(c)
	if err != nil {
		return err
	}
	defer release()
	entries, read, err := tailDecisions(s.cfg.DecisionLogFile)
	if err != nil {
		return permatrix.Errorf(permatrix.EINTERNAL, "reading the decision log: %v", err)
	}
	ctx := c.Request().Context()
	rep, err := replay.Run(ctx, entries, replay.Options{Candidate: b, Baseline: p.Bundle(),
		Store: replay.Store{Backend: s.svc.Store(), Description: "the serving store"}})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "%s", err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"report": rep, "log": map[string]any{
		"bytes_read": read, "entries": len(entries), "max_decisions": replayMaxDecisions, "max_bytes": replayMaxBytes}})
}

// tailDecisions reads the last entries of a decision log: at most
// replayMaxBytes from its end, whole lines only (the first may be cut by
// the bound, the last may be being written), then at most
// replayMaxDecisions of them.
func tailDecisions(path string) ([]decisionlog.Entry, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil // nothing logged yet
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	off := max(0, fi.Size()-replayMaxBytes)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		} else {
			buf = nil
		}
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	} else {
		buf = nil
	}
	entries, err := decisionlog.Read(bytes.NewReader(buf))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if len(entries) > replayMaxDecisions {
		entries = entries[len(entries)-replayMaxDecisions:]
	}
	return entries, len(buf), nil
}
