package http_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/test/harness"
)

// GET /v1/backup holds a read transaction while it streams: a client that
// stops reading, and one that goes away midway, must not keep it open — a
// commit that has to grow bbolt's memory map waits for every read
// transaction, and the store cannot close while one is open. Writes go on
// meanwhile; each stopped backup is logged with how far it got, and the
// store then closes (it would wait forever for a snapshot left open).
func TestBackupStalledOrGoneClientReleasesTheSnapshot(t *testing.T) {
	defer permhttp.SetStreamIdle(300 * time.Millisecond)()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs harness.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	srv := permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, Logger: log})
	base := serveOn(t, srv)
	const n = 14_000 // ~10 MB of store: far more than the kernel buffers between server and client
	long := strings.Repeat("x", 240)
	status, body, err := postImport(t, base, "?chunk=10000", func(w io.Writer) error {
		for i := range n {
			if _, err := fmt.Fprintf(w, `{"subject":"user:%s-%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`+"\n", long, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || status != http.StatusOK {
		t.Fatalf("import: %d %v %v", status, body, err)
	}

	// A client whose socket holds 4 KiB.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	// start begins a backup and reads its first 64 KiB.
	start := func(t *testing.T) *http.Response {
		tr := &http.Transport{DialContext: dialer.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		req, err := http.NewRequest(http.MethodGet, base+"/v1/backup", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+docTestToken)
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.ContentLength < 8<<20 {
			t.Fatalf("GET /v1/backup: %d, %d bytes", res.StatusCode, res.ContentLength)
		}
		if _, err := io.CopyN(io.Discard, res.Body, 64<<10); err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i, c := range []struct {
		name string
		gone bool // closes the connection; else stops reading
	}{{"stalled", false}, {"gone", true}} {
		t.Run(c.name, func(t *testing.T) {
			res := start(t)
			if c.gone {
				res.Body.Close()
			} else {
				defer res.Body.Close()
			}
			// Writes are made while the backup is held.
			status, _ := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken,
				strings.NewReader(fmt.Sprintf(`{"subject":"user:during%d","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}`, i)))
			if status != http.StatusCreated {
				t.Fatalf("a write during the backup: %d", status)
			}
			for giveUp := time.Now().Add(time.Minute); strings.Count(logs.String(), "stopped after") <= i; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(giveUp) {
					t.Fatalf("the backup was not stopped:\n%s", logs.String())
				}
			}
		})
	}
	// A shutdown ends a backup waiting for a client that does not read,
	// long before its wait is up: the shutdown is not held for it.
	t.Run("shutdown", func(t *testing.T) {
		defer permhttp.SetStreamIdle(time.Hour)()
		res := start(t)
		defer res.Body.Close()
		// Time for the server to fill the socket's buffers and wait in a
		// write (without it the test may pass by stopping between writes;
		// it never fails for it).
		time.Sleep(300 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown with a backup in flight: %v\n%s", err, logs.String())
		}
		if !strings.Contains(logs.String(), "the server is shutting down") {
			t.Fatalf("the backup did not stop for the shutdown:\n%s", logs.String())
		}
	})
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the store did not close: a backup's read transaction is still open\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "backup at revision 2 stopped after") {
		t.Fatalf("no backup stop logged:\n%s", logs.String())
	}
}
