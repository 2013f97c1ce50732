package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

type serveOptions struct {
	addr, db, bundle         string
	adminToken, adminTokenFn string
	logLevel, decisionLog    string
	bodyLimit                int64
	shutdownTimeout          time.Duration
}

func newServe() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the policy decision point (HTTP API)",
		Long: `Run the policy decision point. With no flags it serves the policies and data
embedded in the binary, keeps assignments in ./permatrix.db (or $PERMATRIX_DB) and
listens on 127.0.0.1:8181. Without --admin-token(-file) a random admin token is
generated and logged at startup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:8181", "address to listen on")
	f.StringVar(&o.db, "db", "./permatrix.db", "bbolt file of the assignment store")
	f.StringVar(&o.bundle, "bundle", "", "policy bundle: a directory, a .tar.gz OPA bundle or an http(s) URL (default: the embedded one)")
	f.StringVar(&o.adminToken, "admin-token", "", "bearer token of the administration API")
	f.StringVar(&o.adminTokenFn, "admin-token-file", "", "file holding the admin token")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.decisionLog, "decision-log", "", "append decisions as JSON lines to this file (- for stdout)")
	f.Int64Var(&o.bodyLimit, "body-limit", 1<<20, "largest request body in bytes")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to wait for in-flight requests on SIGTERM")
	return cmd
}

func adminToken(o serveOptions, log *slog.Logger) (string, error) {
	switch {
	case o.adminToken != "" && o.adminTokenFn != "":
		return "", errors.New("give one of --admin-token and --admin-token-file")
	case o.adminToken != "":
		return o.adminToken, nil
	case o.adminTokenFn != "":
		b, err := os.ReadFile(o.adminTokenFn)
		if err != nil {
			return "", err
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("%s is empty", o.adminTokenFn)
		}
		return t, nil
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	t := hex.EncodeToString(b[:])
	log.Warn("no --admin-token given: generated one for this run", "admin_token", t)
	return t, nil
}

func runServe(ctx context.Context, o serveOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	token, err := adminToken(o, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	db, err := bolt.Open(o.db)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	var dlog pdp.DecisionLogger
	if o.decisionLog != "" {
		w, err := decisionlog.Open(o.decisionLog)
		if err != nil {
			return fmt.Errorf("--decision-log: %w", err)
		}
		defer w.Close()
		dlog = w
	}

	svc := pdp.New(db, opa.New(), log, dlog)
	b, err := opa.Load(ctx, o.bundle, opa.LoadOptions{})
	if err != nil {
		return err
	}
	p, err := svc.Load(ctx, b)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	srv := http.NewServer(svc, http.Config{AdminToken: token, BodyLimit: o.bodyLimit, Logger: log})
	srv.Metrics().StoreRevision.Set(float64(db.Revision()))
	addr, err := srv.Listen(o.addr)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", addr.String(), "db", o.db, "bundle_revision", p.Revision(), "store_revision", db.Revision(), "systems", len(p.Catalog))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
	}
	return <-errc
}
