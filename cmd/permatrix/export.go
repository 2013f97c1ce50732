package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/store"
)

type exportOptions struct {
	store    storeOptions
	format   string
	logLevel string
}

func newExport() *cobra.Command {
	o := exportOptions{}
	cmd := &cobra.Command{
		Use:   "export [--db FILE | --store URL] [--format json|ndjson]",
		Short: "Write a store to standard output: OPA data, or the lines an import takes",
		Long: `Write a store, at one revision, to standard output without a server (GET
/v1/export with one): --format json (the default) is OPA data, {"store": …},
for the policies and the stock opa; --format ndjson is every record as the
lines permatrix import and POST /v1/import take — custom roles, projects,
assignments with their ids, then group memberships —, between a header and
an end line counting them (an import refuses the export cut short), so
that an export imports into an empty store as the same store (its
revision aside). A bbolt
file is opened read-only (stop serve first: the file is single-process). An
etcd store is exported as it is when the export starts: it waits (up to 2
minutes) until --replica holds every commit made before, and fails, writing
nothing, if etcd cannot be reached — the replica file may hold what an
earlier run left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runExport(cmd, o) },
	}
	f := cmd.Flags()
	o.store.register(f, false)
	f.StringVar(&o.store.replica, "replica", "./permatrix-replica.db", "with an etcd store: the local bbolt replica")
	f.StringVar(&o.format, "format", "json", "json (OPA data) or ndjson (the lines an import takes)")
	// --format means another thing in each command: its own variable
	// (PERMATRIX_FORMAT, the one all shared, still sets export's).
	ownEnv(f, "export", "format", "PERMATRIX_FORMAT")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// freshWait bounds how long an export waits to read the store as it is
// (Backend.Fresh), as waitReadable bounds the first load of a replica.
const freshWait = 2 * time.Minute

func runExport(cmd *cobra.Command, o exportOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	write := store.WriteDocument
	switch o.format {
	case "json":
	case "ndjson":
		write = store.WriteRecords
	default:
		return fmt.Errorf("--format %q: json (OPA data) or ndjson (the lines an import takes)", o.format)
	}
	kind, where, err := o.store.target(cmd.Flags())
	if err != nil {
		return err
	}
	// Opening a bolt file creates it: a mistyped --db would export an
	// empty store.
	if kind == "bolt" {
		if _, err := os.Stat(where); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o.store.readOnly = true
	db, where, err := o.store.open(ctx, cmd.Flags(), log)
	if err != nil {
		return damaged(err, log, where)
	}
	defer db.Close()
	if err := waitReadable(ctx, db); err != nil {
		return err
	}
	// An etcd replica answers at once from what its file holds, which may
	// be what an earlier run left: the export waits until it holds every
	// commit made before it started (nothing to wait for in a bbolt file),
	// and fails rather than write an old state as the store.
	fctx, cancel := context.WithTimeout(ctx, freshWait)
	err = db.Fresh(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: not exported, the store as it is now could not be read (is etcd reachable?): %w", where, plain(err))
	}
	snap, err := db.View()
	if err != nil {
		return err
	}
	defer snap.Close()
	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	if err := write(w, snap); err != nil {
		return err
	}
	return w.Flush()
}
