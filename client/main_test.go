package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// The examples run against a real server TestMain starts: a bbolt file in a
// temporary directory, the embedded bundle, the HTTP API on a free loopback
// port. In a pod, sidecarURL is the sidecar's http://127.0.0.1:8181.
var sidecarURL string

// adminToken is the examples' server's admin token (--admin-token-file).
const adminToken = "example-admin-token"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "permatrix-client")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop, err := startExampleServer(filepath.Join(dir, "permatrix.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the examples' server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startExampleServer serves the API on a free port, sets sidecarURL and
// returns what stops it.
func startExampleServer(dbPath string) (stop func(), err error) {
	db, err := bolt.Open(dbPath, bolt.Options{})
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	b, err := opa.ReadBundle(context.Background(), "", opa.ReadOptions{})
	if err == nil {
		_, err = svc.Activate(context.Background(), b)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	srv := permhttp.NewServer(svc, permhttp.Config{AdminToken: adminToken, Logger: log})
	if _, err := srv.Listen("127.0.0.1:0"); err != nil {
		db.Close()
		return nil, err
	}
	sidecarURL = srv.URL()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = db.Close()
	}, nil
}
