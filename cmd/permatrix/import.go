package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

type importOptions struct {
	store    storeOptions
	bundle   string
	chunk    int
	logLevel string
}

func newImport() *cobra.Command {
	o := importOptions{}
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import assignments (NDJSON) into a store without a server",
		Long: `Import an NDJSON file of assignments (one assignment object per line, as
POST /v1/import takes, or a custom_role, project or membership record, as
permatrix export --format ndjson writes them, an export taken only whole,
with its end line — a file's last line is checked before anything is
committed; "-" reads standard input) straight into a store, with no server running on it. Every line is judged by the write rules of the bundle
(the embedded one unless --bundle), with its own "actor" if it names one, and
committed --chunk lines at a time (each chunk one commit: a crash or an
interrupt leaves whole chunks; into etcd, whose transactions are smaller —
--etcd-max-txn-ops, --etcd-max-request-bytes —, as many commits of whole
lines as fit); the first refused line stops the import and says how far it
got (exit 2). Progress goes to a terminal as one line (lines,
rate, time left), otherwise as log lines on stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runImport(cmd, args[0], o) },
	}
	f := cmd.Flags()
	o.store.register(f, false)
	f.StringVar(&o.store.replica, "replica", "./permatrix-replica.db", "with an etcd store: the local bbolt replica")
	f.StringVar(&o.bundle, "bundle", "", "policy bundle whose write rules judge the lines (default: the embedded one)")
	f.IntVar(&o.chunk, "chunk", 10_000, fmt.Sprintf("lines per commit, 1 to %d, fewer once their ids and names reach %d MiB (0: one commit, all or nothing, at most %d lines and %d MiB of ids and names)",
		pdp.MaxImportChunk, pdp.MaxHeldImportBytes>>20, pdp.MaxAtomicImport, pdp.MaxHeldImportBytes>>20))
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runImport(cmd *cobra.Command, file string, o importOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	// Checked before the store is opened, which creates a --db file.
	if o.chunk < 0 || o.chunk > pdp.MaxImportChunk {
		return fmt.Errorf("--chunk %d: chunk must be 1 to %d lines per commit (0: one commit, all or nothing)", o.chunk, pdp.MaxImportChunk)
	}
	// Interrupted, the import stops: the chunks committed stay, the one
	// being committed is dropped whole, and the error says how far it got.
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Interrupted before the first line is read (counting a large file,
	// opening the store, compiling the bundle), it says so, not how the
	// step it interrupted failed.
	early := func(err error) error {
		if ctx.Err() != nil {
			return errors.New("import stopped: interrupted; nothing was imported")
		}
		return err
	}
	f := os.Stdin
	if file != "-" {
		if f, err = os.Open(file); err != nil {
			return err
		}
		defer f.Close()
	}
	total := 0
	// A regular file is counted first, for the time left; a pipe
	// (<(zcat …), /dev/stdin of a pipe) is read once, its total unknown.
	// Standard input redirected from a file (`- < export.ndjson`) is a
	// regular file too, read from where it stands: it was read as a pipe,
	// an export cut short found so only after the chunks before it were
	// committed.
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		start, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		var filled int
		if total, filled, err = countLines(ctx, f); err != nil {
			return early(err)
		}
		// An export cut short is refused before the store is
		// opened: in chunks, the import's own check at the end
		// comes after the chunks before are committed.
		rest := max(st.Size()-start, 0) // a stdin at its end: nothing left
		if err := http.CheckExportEnd(io.NewSectionReader(f, start, rest), rest, int64(filled)); err != nil {
			var pe *permatrix.Error
			if !errors.As(err, &pe) {
				return err // reading the file failed
			}
			return fmt.Errorf("import stopped: %s; nothing was imported", pe.Message)
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return err
		}
	}
	var in io.Reader = f
	db, where, err := o.store.open(ctx, cmd.Flags(), log)
	if err != nil {
		return early(damaged(err, log, where))
	}
	defer db.Close()
	if err := waitReadable(ctx, db); err != nil {
		return early(err)
	}
	b, err := opa.ReadBundle(ctx, o.bundle, opa.ReadOptions{})
	if err != nil {
		return early(err)
	}
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	if _, err := svc.Activate(ctx, b); err != nil {
		return early(fmt.Errorf("bundle: %w", err))
	}
	// Progress counts the file's lines (blank ones too), as total does.
	p := newProgress("importing "+file+" into "+where+" (lines)", total, log)
	done := 0
	res, err := svc.ImportStream(ctx, http.NewImportReader(in, func(_ int, given *string) (string, error) {
		if given == nil {
			return "", nil
		}
		// As POST /v1/import: a line that names an actor names a user;
		// "actor": "" is refused, never taken for the operator.
		if !permatrix.ValidID(*given) {
			return "", permatrix.Errorf(permatrix.EINVALID, "actor must be a user id of 1 to %d bytes without control characters (leave it out to write as the operator)", permatrix.MaxIDBytes)
		}
		return *given, nil
	}).Next, pdp.ImportOptions{Chunk: o.chunk, Progress: func(r pdp.ImportResult) {
		log.Debug("import chunk committed", "imported", r.Imported, "already_stored", r.AlreadyStored, "last_line", r.LastLine, "revision", r.Revision)
		p.add(r.LastLine - done)
		done = r.LastLine
	}})
	p.finish(err)
	if err != nil {
		msg := err.Error()
		var pe *permatrix.Error
		switch {
		case errors.As(err, &pe):
			msg = pe.Message
		case errors.Is(err, context.Canceled):
			msg = "interrupted"
		}
		return fmt.Errorf("import stopped: %s; %s", msg, res.Describe())
	}
	// Lines stored already (the file imported again after a kill -9) are
	// not counted as imported, nor their chunks as commits.
	already := ""
	if res.AlreadyStored > 0 {
		already = fmt.Sprintf(" (%d already stored)", res.AlreadyStored)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "imported %s from %s%s in %s; store %s at revision %d\n",
		plural(res.Imported, res.Noun()), plural(res.Lines, "line"), already, plural(res.Chunks, "commit"), where, res.Revision)
	return nil
}

// plural is "1 <noun>" or "<n> <noun>s" ("0 commits").
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// countLines counts the lines of r as the import numbers them (for the
// progress's time left): its newlines, and a last line without one; and
// filled, those not blank (JSON's whitespace only), which an export's end
// counts with its header and itself. It stops when ctx ends (a large file
// takes a while).
func countLines(ctx context.Context, r io.Reader) (n, filled int, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	buf := make([]byte, 1<<20)
	last := byte('\n')
	inFilled := false // the line being read has a byte that is not blank
	for {
		if err := ctx.Err(); err != nil {
			return n, filled, err
		}
		k, err := br.Read(buf)
		for _, b := range buf[:k] {
			switch b {
			case '\n':
				n++
				if inFilled {
					filled++
				}
				inFilled = false
			case ' ', '\t', '\r':
			default:
				inFilled = true
			}
		}
		if k > 0 {
			last = buf[k-1]
		}
		if err == io.EOF {
			if last != '\n' {
				n++
				if inFilled {
					filled++
				}
			}
			return n, filled, nil
		}
		if err != nil {
			return n, filled, err
		}
	}
}
