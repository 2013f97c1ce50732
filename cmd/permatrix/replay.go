package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/replay"
	"github.com/permatrix/permatrix/internal/store"
)

type replayOptions struct {
	decisions, bundle, baseline string
	store, db, storeExport      string
	format                      string
}

func newReplay() *cobra.Command {
	o := replayOptions{}
	cmd := &cobra.Command{
		Use:   "replay --decisions LOG --bundle NEW [--store current --db PATH | --store-export FILE]",
		Short: "Re-decide logged decisions under candidate policies and show those that would flip",
		Long: `Read a decision log written by serve --decision-log, decide every logged check
again under the candidate bundle (--bundle: a directory, .tar.gz or URL; default
the embedded one) and print the decisions that would flip, grouped by system and
action, with counts. Exit status: 0 nothing flips, 1 some decision flips, 2 error.

The store: the log records the store revision of each decision but not the
store's contents, so --store logged is not available; decisions are re-made
against the current store (--store current, the default): a --db file (which
fails while a server holds it) or an export (--store-export FILE, the body of
GET /v1/export). The output says which. PERMATRIX_DB sets --db, as for serve;
PERMATRIX_STORE and PERMATRIX_BUNDLE are serve's store URL and bundle and set
neither --store nor --bundle.

A flip is measured against the logged result; but the store may have changed
since. --baseline BUNDLE (e.g. the bundle serving now) decides every input under
it too, against the same store, and counts only where candidate and baseline
disagree: policy changes alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReplay(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.decisions, "decisions", "", "decision log (JSON lines, from serve --decision-log)")
	f.StringVar(&o.bundle, "bundle", "", "candidate bundle (default: the embedded one; not read from PERMATRIX_BUNDLE, which is serve's)")
	f.StringVar(&o.baseline, "baseline", "", "baseline bundle to compare with instead of the logged results")
	f.StringVar(&o.store, "store", "current", "store state to decide against: current (logged is not available: the log does not carry the store)")
	f.StringVar(&o.db, "db", "", "bbolt file of the current store")
	f.StringVar(&o.storeExport, "store-export", "", "JSON export of the current store (GET /v1/export)")
	f.StringVarP(&o.format, "format", "f", "text", "text or json")
	// --format means another thing in each command: its own variable.
	ownEnv(f, "replay", "format")
	_ = cmd.MarkFlagRequired("decisions")
	// PERMATRIX_STORE is serve's store URL (a fleet sidecar's environment
	// holds it), not this --store.
	_ = f.SetAnnotation("store", noEnvAnnotation, []string{"serve's --store"})
	// PERMATRIX_BUNDLE is the bundle serve serves: the candidate is another
	// (or the embedded one), never taken from the environment.
	_ = f.SetAnnotation("bundle", noEnvAnnotation, []string{"serve's --bundle"})
	return cmd
}

func runReplay(cmd *cobra.Command, o replayOptions) error {
	if o.db != "" && o.storeExport != "" {
		// A flag beats the environment: --store-export beats the
		// PERMATRIX_DB that a sidecar's environment holds for serve.
		if which, err := preferred(cmd.Flags(), "db", "store-export"); err == nil && which == "db" {
			o.storeExport = ""
		} else if err == nil {
			o.db = ""
		}
	}
	switch {
	case o.store == "logged":
		return errors.New("--store logged: the decision log records each decision's store revision, not the store's contents; replay against the current store (--store current with --db PATH or --store-export FILE)")
	case o.store != "current":
		return fmt.Errorf("--store %q: want current", o.store)
	case o.db != "" && o.storeExport != "":
		return errors.New("give one of --db and --store-export")
	case o.db == "" && o.storeExport == "":
		return errors.New("the current store is needed: --db PATH (not while a server holds it) or --store-export FILE (GET /v1/export)")
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format %q: want text or json", o.format)
	}
	ctx := cmd.Context()
	f, err := os.Open(o.decisions)
	if err != nil {
		return err
	}
	entries, err := decisionlog.Read(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.decisions, err)
	}

	var rs replay.Store
	if o.db != "" {
		// Opening a bolt file creates it: a mistyped --db would replay
		// against a new, empty store.
		if _, err := os.Stat(o.db); err != nil {
			return fmt.Errorf("--db %s: %w", o.db, err)
		}
		db, err := openReading(o.db)
		if err != nil {
			return fmt.Errorf("%w (replay the server's export instead: --store-export)", err)
		}
		defer db.Close()
		rs = replay.Store{Backend: db, Description: fmt.Sprintf("current: %s at revision %d", o.db, db.Revision())}
	} else {
		f, err := os.Open(o.storeExport)
		if err != nil {
			return err
		}
		mem, err := store.ReadDocument(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.storeExport, err)
		}
		rs = replay.Store{Backend: mem, Description: "current: export " + o.storeExport}
	}

	ropts := replay.Options{Store: rs}
	if ropts.Candidate, err = opa.ReadBundle(ctx, o.bundle, opa.ReadOptions{}); err != nil {
		return err
	}
	if o.baseline != "" {
		if ropts.Baseline, err = opa.ReadBundle(ctx, o.baseline, opa.ReadOptions{}); err != nil {
			return fmt.Errorf("--baseline: %w", err)
		}
	}
	rep, err := replay.Run(ctx, entries, ropts)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeReplay(out, o, rep)
	}
	if rep.Flips > 0 {
		return exitError{code: 1}
	}
	return nil
}

func writeReplay(w io.Writer, o replayOptions, rep *replay.Report) {
	fmt.Fprintf(w, "replayed %d decisions from %s", rep.Decisions, o.decisions)
	if rep.Skipped > 0 {
		fmt.Fprintf(w, " (%d other entries skipped)", rep.Skipped)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "candidate bundle: %s (logged under %s)\n", rep.CandidateRevision, strings.Join(rep.LoggedRevisions, ", "))
	if rep.BaselineRevision != "" {
		fmt.Fprintf(w, "baseline bundle: %s (flips are candidate vs baseline, both on the store below)\n", rep.BaselineRevision)
	}
	fmt.Fprintf(w, "store: %s; the log was written at store revisions %d-%d and does not carry the store's contents, so the logged store is not available\n",
		rep.Store, rep.LoggedStore[0], rep.LoggedStore[1])
	if rep.Flips == 0 {
		fmt.Fprintln(w, "no decision would flip")
		return
	}
	fmt.Fprintf(w, "%d decisions would flip:\n", rep.Flips)
	for _, g := range rep.Groups {
		var parts []string
		if g.AllowToDeny > 0 {
			parts = append(parts, fmt.Sprintf("allow→deny %d", g.AllowToDeny))
		}
		if g.DenyToAllow > 0 {
			parts = append(parts, fmt.Sprintf("deny→allow %d", g.DenyToAllow))
		}
		if g.Invalid > 0 {
			parts = append(parts, fmt.Sprintf("now invalid %d", g.Invalid))
		}
		fmt.Fprintf(w, "  %s/%s: %d (%s)\n", g.System, g.Action, g.Flips, strings.Join(parts, ", "))
	}
	for _, g := range rep.Groups {
		fmt.Fprintf(w, "\n%s/%s:\n", g.System, g.Action)
		for _, f := range g.Examples {
			res := f.Resource.Type
			if f.Resource.ID != "" {
				res += ":" + f.Resource.ID
			}
			line := fmt.Sprintf("  %s subject %q on %s: %s → %s", f.DecisionID, f.Subject, res, verdict(f.Was), verdict(f.Now))
			switch {
			case f.Invalid != "":
				line += "; invalid: " + f.Invalid
			case len(f.Missing) > 0:
				b, _ := json.Marshal(f.Missing)
				line += "; missing " + string(b)
			case len(f.Reasons) > 0:
				b, _ := json.Marshal(f.Reasons)
				line += "; reasons " + string(b)
			}
			fmt.Fprintln(w, line)
		}
		if g.Flips > len(g.Examples) {
			fmt.Fprintf(w, "  … and %d more\n", g.Flips-len(g.Examples))
		}
	}
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}
