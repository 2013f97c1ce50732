package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// backupPath streams, as exportPath does.
const backupPath = "/v1/backup"

// The headers of a backup: the revision the copy holds and its file
// format (the bbolt store's format version), also on HEAD.
const (
	backupRevisionHeader = "X-Permatrix-Revision"
	backupFormatHeader   = "X-Permatrix-Store-Format"
)

// errShuttingDown stops a backup in flight when a shutdown starts: the
// store closes after the shutdown, and a read transaction still open
// would hold its close up.
var errShuttingDown = errors.New("the server is shutting down")

// GET /v1/backup: the store file at one revision, from one read
// transaction (bolt's Backup: bbolt's Tx.WriteTo), for `permatrix store
// backup`; `store copy --force` restores it.
func (s *Server) backup(c echo.Context) error {
	bk, ok := s.svc.Store().(store.Backuper)
	if !ok {
		return permatrix.Errorf(permatrix.ECONFLICT,
			"this server's store is on etcd: its local file is a replica, not a backup; copy the cluster with `permatrix store copy --from etcd://… --to bolt:backup.db`, which works while the sidecars run, or take etcd's snapshots")
	}
	if s.stopping.Err() != nil {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: back up again once it is serving", errShuttingDown)
	}
	b, err := bk.Backup()
	if err != nil {
		return err
	}
	defer b.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEOctetStream)
	// The length lets a client tell a download cut short from a whole one.
	h.Set(echo.HeaderContentLength, strconv.FormatInt(b.Size(), 10))
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=\"permatrix-%d.db\"", b.Revision()))
	h.Set("Cache-Control", "no-store")
	h.Set(backupRevisionHeader, strconv.FormatUint(b.Revision(), 10))
	h.Set(backupFormatHeader, strconv.FormatUint(b.Format(), 10))
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil // the headers GET would send now; the snapshot was only opened
	}
	// As an export: no request deadline, each wait for the client bounded
	// by streamIdle — a client that stops reading must not keep the read
	// transaction open (bolt's backup.go: a commit that must grow the
	// memory map waits for it).
	rc := http.NewResponseController(c.Response().Writer)
	w := idleWriter{w: stopWriter{w: c.Response(), s: s}, extend: func() { _ = rc.SetWriteDeadline(time.Now().Add(streamIdle)) }}
	// A shutdown also ends a write waiting for a client that does not
	// read (stopWriter refuses the next one): else it would hold the
	// shutdown, and the store's close, for up to streamIdle.
	stop := context.AfterFunc(s.stopping, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()
	n, err := b.WriteTo(w)
	if err != nil && s.stopping.Err() != nil && !errors.Is(err, errShuttingDown) {
		err = fmt.Errorf("%w (%v)", errShuttingDown, err) // the deadline the shutdown set
	}
	if err != nil {
		// After the status: handleError logs it and cuts the response
		// short, which the client sees as fewer bytes than Content-Length.
		return fmt.Errorf("backup at revision %d stopped after %d of %d bytes: %w", b.Revision(), n, b.Size(), err)
	}
	return nil
}

// stopWriter refuses to write once a shutdown has started.
type stopWriter struct {
	w io.Writer
	s *Server
}

func (w stopWriter) Write(p []byte) (int, error) {
	if w.s.stopping.Err() != nil {
		return 0, errShuttingDown
	}
	return w.w.Write(p)
}
