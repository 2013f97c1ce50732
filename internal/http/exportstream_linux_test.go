package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// GET /v1/export streams as long as its client reads, as an import runs as
// long as its client sends (each wait for the client bounded): a client
// reading a large store at 1 MB/s got an export cut short — the
// connection's write deadline, the request timeout (here 1 s) + 5 s, ended
// it midway.
func TestExportRunsWhileTheClientReads(t *testing.T) {
	defer permhttp.SetStreamIdle(5 * time.Second)()
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, RequestTimeout: time.Second}))
	const n = 14_000 // ~9.5 MB of export: twice what the kernel buffers between server and client
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

	// A client whose socket holds 4 KiB, reading 100 KB every 100 ms.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	req, err := http.NewRequest(http.MethodGet, base+"/v1/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+docTestToken)
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got strings.Builder
	for {
		_, err := io.CopyN(&got, res.Body, 100_000)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("GET /v1/export read slowly: cut short after %d bytes and %s: %v", got.Len(), time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var export struct {
		Store struct{ Grants map[string]any }
	}
	if err := json.Unmarshal([]byte(got.String()), &export); err != nil || len(export.Store.Grants) != n {
		t.Fatalf("GET /v1/export read slowly: %d bytes, %d grants, %v", got.Len(), len(export.Store.Grants), err)
	}
	if elapsed < 6500*time.Millisecond {
		t.Fatalf("the export took %s: not longer than the request timeout and its 5 s, so this test tested nothing", elapsed)
	}
}
