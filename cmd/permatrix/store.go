package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// Exit codes about the store file (docs/security.md).
const (
	// exitStoreDamaged: `store check` found damage; `serve` refused to
	// open a damaged or empty store file.
	exitStoreDamaged = 3
)

func newStore() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Work on the assignment store file",
	}
	var db string
	check := &cobra.Command{
		Use:   "check",
		Short: "Check a store file for damage (exit 0 sound, 3 damaged, 2 cannot check)",
		Long: `Check the store file without changing it: its bbolt page structure (read from
the file, so damage cannot crash the check), bbolt's own consistency check, and
every record (decodes strictly, valid ids, indexes agree). Prints what is wrong.
Exit 0: sound. Exit 3: damaged (serve refuses such a file with the same exit
code). Exit 2: the file cannot be checked (absent, unreadable, not a regular
file, or locked by a running permatrix serve).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bolt.Check(db)
			var ce *bolt.CorruptError
			if errors.As(err, &ce) {
				fmt.Fprintf(cmd.OutOrStdout(), "store %s is damaged:\n", db)
				for _, p := range ce.Problems {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", p)
				}
				return exitError{exitStoreDamaged}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "store %s is sound: revision %d, %d assignments, %d memberships, %d roles, %d projects\n",
				db, r.Revision, r.Assignments, r.Memberships, r.Roles, r.Projects)
			return nil
		},
	}
	check.Flags().StringVar(&db, "db", "./permatrix.db", "the store file")
	cmd.AddCommand(check, newStoreCopy(), newStoreBackup())
	return cmd
}

type copyOptions struct {
	from, to storeOptions
	force    bool
	batchOps int
	logLevel string
}

func newStoreCopy() *cobra.Command {
	o := copyOptions{}
	cmd := &cobra.Command{
		Use:   "copy --from STORE --to STORE",
		Short: "Copy an assignment store to another (bolt to etcd, etcd to bolt, …)",
		Long: `Copy every assignment, membership, custom role and project from one store to
another, ids and order preserved: to grow from one pod to a fleet (--from
bolt:./permatrix.db --to etcd://h1:2379,h2:2379/permatrix) or back. A store is
bolt:PATH or etcd://HOST:PORT[,HOST:PORT…]/PREFIX (etcds:// for TLS; the
--etcd-* flags apply to whichever side is etcd). Never a store onto itself:
two paths of one file, or two prefixes of one etcd cluster (known by its
id) one of which is, or is inside, the other, are refused before anything
is written; so is an etcd target nested with another fleet's prefix (inside
it, or around it: docs/fleet.md). The source must exist, hold
something and be a whole store (its records are checked); the target must be
empty unless --force, which first deletes what it holds (a damaged bbolt
target is replaced with --force only). New ids in the target come after every
id the source ever handed out. Revisions are the target's own: consistency
tokens of the source mean nothing there. Copy while no sidecar writes to
either store: the copy is made in batches (each one commit), so a failed copy
into etcd leaves part of it — marked: the copy marks the prefix before it
changes anything and removes the mark after its last commit, and no sidecar
serves a marked prefix (503, not ready), nor does a copy read one; run it
again with --force to complete it. One copy into a prefix at a time: a
running copy holds the prefix's copy lock (on an etcd lease it keeps alive,
which outlasts a kill by its TTL: 10s, or the cluster's least lease TTL —
1.5 election timeouts — if longer), and a second one is refused, --force or not (so is every
copy while a key put by hand under PREFIX/c/copy/ holds the lock: the
refusal names it and says how to delete it). Into a bbolt file it is made in
PATH.copying and renamed over PATH once complete: a failed or interrupted copy
leaves PATH as it was. Progress goes to a terminal as one line (count, rate,
time left), otherwise as log lines. Exit 0 copied, 3 a damaged bbolt file, 2
other errors (Ctrl-C and SIGTERM included).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStoreCopy(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.from.url, "from", "", "the store to copy")
	f.StringVar(&o.to.url, "to", "", "the store to copy into")
	f.BoolVar(&o.force, "force", false, "delete what the target holds before copying")
	f.IntVar(&o.batchOps, "batch-ops", 10_000, "most operations per commit, guards included (into etcd also within --etcd-max-txn-ops and --etcd-max-request-bytes)")
	o.from.registerEtcd(f) // for either side: copied to o.to
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runStoreCopy(cmd *cobra.Command, o copyOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if o.from.url == "" || o.to.url == "" {
		return errors.New("give --from and --to (bolt:PATH or etcd://HOST:PORT/PREFIX)")
	}
	if err := distinctStores(o.from.url, o.to.url); err != nil {
		return err
	}
	fromKind, fromWhere, err := o.from.target(nil)
	if err != nil {
		return fmt.Errorf("--from: %w", plain(err))
	}
	toKind, toWhere, err := o.to.target(nil)
	if err != nil {
		return fmt.Errorf("--to: %w", plain(err))
	}
	// Opening a bolt file creates it: a mistyped --from would copy an empty
	// store (and, with --force, empty the target).
	if fromKind == "bolt" {
		fi, err := os.Stat(fromWhere)
		if err != nil {
			return fmt.Errorf("--from %s: %w", o.from.url, plain(err))
		}
		if toKind == "bolt" {
			if err := distinctFiles(fi, fromWhere, toWhere); err != nil {
				return err
			}
		}
	}
	// Interrupted (Ctrl-C, SIGTERM), the copy stops as on an error, and
	// cleans up: the replicas made for it, a bbolt target's PATH.copying.
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The etcd flags apply to either side; an etcd side reads through a
	// replica of its own, made for the copy and removed after.
	tmp, release, err := copyScratch(log)
	if err != nil {
		return err
	}
	defer release()
	o.to.etcd, o.to.pwFile = o.from.etcd, o.from.pwFile
	o.to.etcd.CopyTarget = true // reads and writes the prefix it marks
	o.from.replica, o.to.replica = filepath.Join(tmp, "from.db"), filepath.Join(tmp, "to.db")
	o.from.readOnly = true
	from, fromName, err := o.from.open(ctx, nil, log)
	if err != nil {
		return copyOpenError(cmd, "--from "+o.from.url, err)
	}
	defer from.Close()
	var to store.Backend
	var toName string
	var stage *stagedCopy
	if toKind == "bolt" {
		stage, err = stageCopy(toWhere, o.force)
		var ce *bolt.CorruptError
		if errors.As(err, &ce) {
			// What the damage message says to do: a copy replaces it.
			fmt.Fprintf(cmd.ErrOrStderr(), "permatrix: --to: %v\n(give --force to replace it with the copy)\n", err)
			return exitError{exitStoreDamaged}
		}
		if err != nil {
			return copyOpenError(cmd, "--to "+o.to.url, err)
		}
		if stage.lock != nil {
			log.Warn("the target is damaged: it is replaced once the copy is complete", "store", "bolt:"+toWhere)
		}
		defer stage.abort()
		to, toName = stage.db, "bolt:"+toWhere
	} else {
		to, toName, err = o.to.open(ctx, nil, log)
		if err != nil {
			return copyOpenError(cmd, "--to "+o.to.url, err)
		}
		defer to.Close()
	}
	if err := distinctPrefixes(ctx, from, to, fromName, toName); err != nil {
		return err
	}
	if err := waitReadable(ctx, from); err != nil {
		return fmt.Errorf("--from %s: %w", fromName, plain(err))
	}
	if err := waitReadable(ctx, to); err != nil {
		return fmt.Errorf("--to %s: %w", toName, plain(err))
	}
	// One copy into a prefix at a time: a running copy holds the prefix's
	// copy lock (on a lease it keeps alive) until it ends, which the mark
	// cannot say; the target is read as the copy before left it.
	target, _ := to.(*etcd.Store)
	if target != nil {
		// Not into a prefix nested with another fleet's (its sidecars
		// would read the copy as their data, or the clearing delete
		// theirs): claimed as serve claims it.
		if err := target.ClaimPrefix(ctx); err != nil {
			return fmt.Errorf("--to %s: %w", toName, plain(err))
		}
		if err := target.LockCopy(ctx); err != nil {
			return fmt.Errorf("--to %s: %w", toName, plain(err))
		}
	}
	batchOps := o.batchOps // 0: store.Copy's default, and an etcd target's limits
	// The source is read, and found not empty, before anything of the
	// target is deleted.
	snap, err := from.View()
	if err != nil {
		return err
	}
	defer snap.Close()
	total, err := store.Count(snap)
	if err != nil {
		return err
	}
	if total == 0 {
		return fmt.Errorf("--from %s holds nothing to copy (is the path or the prefix right?)", fromName)
	}
	// A bbolt file was checked when it was opened; an etcd prefix may hold
	// half a store (a copy into it interrupted), which copied on is a file
	// serve refuses as damaged.
	if fromKind != "bolt" {
		if problems := store.Verify(snap, 10); len(problems) > 0 {
			var list strings.Builder
			for _, p := range problems {
				fmt.Fprintf(&list, "\n  %s: %s", p.Where, p.What)
			}
			return fmt.Errorf("--from %s is not a whole store, nothing was copied (a copy into it that was interrupted? copy into it again with --force):%s", fromName, list.String())
		}
	}
	// Ids are never reused: the target's counter must pass every number
	// the source handed out, a deleted assignment's included, not only the
	// ids it still holds. NextID tells without writing anything to a bbolt
	// file; an etcd source reserves a block for it (a gap, which ids allow).
	idFloor, err := from.NextID(ctx)
	if err != nil {
		return fmt.Errorf("--from %s: reading its id counter: %w", fromName, plain(err))
	}
	// Nor a number the bbolt file replaced handed out (a restore: a backup
	// copied over the store): a caller may hold the id of a grant made
	// after the backup, lost with the file, and must not find another's
	// under it. (An etcd target keeps its counter, which RaiseIDs only
	// raises; a damaged file's cannot be read.)
	if stage != nil && stage.old != nil {
		n, err := stage.old.NextID(ctx)
		if err != nil {
			return fmt.Errorf("--to %s: reading its id counter: %w", toName, plain(err))
		}
		idFloor = max(idFloor, n)
	}
	held := 0
	if stage == nil || stage.old != nil {
		target := to
		if stage != nil {
			target = stage.old
		}
		tsnap, err := target.View()
		if err != nil {
			return err
		}
		held, err = store.Count(tsnap)
		tsnap.Close()
		if err != nil {
			return err
		}
	}
	// A prefix a copy marked and did not complete holds part of a store
	// (what is left of it may be nothing: a copy killed right after it
	// marked the prefix): only --force copies over it.
	wasMarked := false
	if target != nil {
		err := target.IncompleteCopy()
		wasMarked = err != nil
		if err != nil && !o.force {
			var ic *etcd.IncompleteCopyError
			errors.As(err, &ic)
			from, since := cmp.Or(ic.From, "an unknown source"), "at an unknown time"
			if !ic.Since.IsZero() {
				since = ic.Since.Format(time.RFC3339)
			}
			return fmt.Errorf("--to %s holds an incomplete copy (from %s, started %s; interrupted: no copy into it is running): give --force to copy over it", toName, from, since)
		}
	}
	if held > 0 && !o.force {
		return fmt.Errorf("--to %s holds %d keys: copy into an empty store, or give --force to delete them first", toName, held)
	}
	// Marked before anything of the target is deleted: until the mark is
	// removed, after the last commit, no sidecar serves the prefix (nor
	// copies from it), whatever point the copy is stopped at.
	if target != nil {
		if err := target.MarkCopy(ctx, fromName); err != nil {
			return markFailed(toName, err, wasMarked)
		}
	}
	if held > 0 {
		if stage != nil {
			log.Info("the target is replaced once the copy is complete", "store", toName, "keys", held)
		} else {
			n, err := store.Clear(ctx, to, batchOps)
			if err != nil {
				if ctx.Err() != nil && !lostLock(err) {
					err = errors.New("interrupted")
				}
				return clearFailed(toName, err)
			}
			log.Info("target cleared", "store", toName, "keys", n)
		}
	}
	p := newProgress("copying "+fromName+" to "+toName+" (keys)", total, log)
	n, err := store.Copy(ctx, snap, to, store.CopyOptions{BatchOps: batchOps, Progress: p.add})
	p.finish(err)
	if err == nil {
		if f, ok := to.(store.IDFloor); ok {
			err = f.RaiseIDs(ctx, idFloor)
		}
	}
	unmarking := false
	if err == nil && target != nil {
		unmarking = true
		err = target.UnmarkCopy(ctx)
	}
	if err != nil {
		var mw *etcd.MetaWriteError
		if unmarking && errors.As(err, &mw) {
			return unmarkFailed(n, toName, mw, ctx.Err() != nil)
		}
		if ctx.Err() != nil && !lostLock(err) {
			err = errors.New("interrupted")
		}
		if stage != nil {
			return fmt.Errorf("copy stopped after %d of %d keys: %w (%s is as it was)", n, total, plain(err), toWhere)
		}
		// Not a mark put before this copy (an interrupted copy's, which
		// may have cleared the store it copied over): the prefix was not
		// an empty store then, but an incomplete copy.
		if held == 0 && !wasMarked && target != nil && unmarkEmpty(target) {
			return fmt.Errorf("copy stopped after %d of %d keys: %w (%s is empty, as it was)", n, total, plain(err), toName)
		}
		return copyStopped(n, total, toName, err)
	}
	rev := to.Revision()
	if stage != nil {
		if err := stage.commit(); err != nil {
			return fmt.Errorf("copied %d keys into %s: %w", n, toWhere, plain(err))
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "copied %d keys from %s (revision %d) to %s (revision %d)\n", n, fromName, snap.Revision(), toName, rev)
	return nil
}

// clearFailed is the error of a copy into an etcd prefix it marked that
// failed clearing it.
func clearFailed(toName string, err error) error {
	return fmt.Errorf("clearing %s: %w%s", toName, plain(err), staysMarked(err, toName, ", cleared in part or not at all"))
}

// copyStopped is the error of a copy into an etcd prefix it marked that
// stopped after n of total keys.
func copyStopped(n, total int, toName string, err error) error {
	return fmt.Errorf("copy stopped after %d of %d keys: %w%s", n, total, plain(err), staysMarked(err, toName, ""))
}

// lostLock says whether err is a copy's write refused for its lost copy
// lock, which says what became of the prefix: more than "interrupted".
func lostLock(err error) bool {
	var lost *etcd.LostCopyLockError
	return errors.As(err, &lost)
}

// staysMarked is what a copy into an etcd prefix it marked says of the
// prefix once stopped by err: it stays marked, and the copy run again
// with --force completes it — unless the copy lost its copy lock. Then
// etcd's refusal (err) says whether the prefix is marked: not, a copy
// that took the lock since completed into it, served, which a copy again
// would replace; marked, that copy may be running still (a copy again is
// refused while it does).
func staysMarked(err error, toName, cleared string) string {
	var lost *etcd.LostCopyLockError
	switch {
	case !errors.As(err, &lost):
		return fmt.Sprintf(" (%s stays marked as holding an incomplete copy, which sidecars do not serve%s: run the copy again with --force)", toName, cleared)
	case lost.Marked:
		return " (once no other copy into it is running, run the copy again with --force: it is refused while one is)"
	default:
		return ""
	}
}

// markFailed is the error of a copy into an etcd prefix whose mark's put
// failed: no key was copied or deleted yet, but the mark may be set (its
// request reached etcd, and no answer came back), which no sidecar serves
// — "nothing was copied" alone would leave the operator with a fleet
// answering 503 and no word of why. wasMarked: the prefix was marked
// before (an interrupted copy): it is, either way.
func markFailed(toName string, err error, wasMarked bool) error {
	var mw *etcd.MetaWriteError
	if !errors.As(err, &mw) {
		return fmt.Errorf("--to %s: %w; nothing was copied (the prefix is as it was)", toName, plain(err))
	}
	state := "may now be marked"
	switch {
	case wasMarked:
		state = "stays marked, as it was before this copy,"
	case mw.Made:
		state = "is now marked"
	}
	return fmt.Errorf("--to %s: %w; no key was copied or deleted, but the prefix %s as holding an incomplete copy, which no sidecar serves (503, not ready): run the copy again — without --force it says whether the prefix is marked (\"holds an incomplete copy\"); with --force it copies over it and removes the mark (docs/fleet.md)", toName, plain(err), state)
}

// unmarkFailed is the error of a copy into an etcd prefix that copied
// every key (n) and raised the id counter, and whose mark's removal may
// have been made, or was (mw): "stays marked" would send the operator to
// copy again over a complete copy the sidecars may be serving.
func unmarkFailed(n int, toName string, mw *etcd.MetaWriteError, interrupted bool) error {
	how := ""
	if interrupted {
		how = "interrupted: "
	}
	if mw.Made {
		return fmt.Errorf("copied %d keys into %s, and removed its mark at etcd revision %d: the copy is complete, though this copy did not see the removal applied in time (%v)", n, toName, mw.Rev, mw.Err)
	}
	return fmt.Errorf("copied %d keys into %s, but %s%w: if the removal was made, the copy is complete and the sidecars serve it; if not, the prefix stays marked as holding an incomplete copy, which no sidecar serves: run the copy again — without --force it says whether the prefix is marked (\"holds an incomplete copy\"); with --force it copies over it and removes the mark (docs/fleet.md)", n, toName, how, plain(mw))
}

// copyScratch makes the directory of a copy's etcd replicas in the
// temporary directory, locked (flock) while the copy runs and removed
// after it, and first removes those that copies killed before they could
// remove theirs left behind (a whole store's worth each): a directory
// whose lock is free and that holds the file "owner" (written once its
// copy held the lock), or one without it older than an hour (left by a
// release before this one, or by a copy killed between making it and
// locking it).
func copyScratch(log *slog.Logger) (dir string, release func(), err error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "permatrix-copy*"))
	for _, d := range old {
		if stale, _ := staleScratch(d); stale {
			if err := os.RemoveAll(d); err != nil {
				log.Warn("could not remove what a killed copy left", "dir", d, "err", err)
			} else {
				log.Info("removed what a killed copy left", "dir", d)
			}
		}
	}
	dir, err = os.MkdirTemp("", "permatrix-copy")
	if err != nil {
		return "", nil, err
	}
	lock, err := os.Open(dir)
	if err == nil {
		if err = tryLock(lock); err != nil {
			lock.Close()
		}
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
		if err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("the copy's temporary directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir); lock.Close() }, nil
}

// staleScratch reports whether d is a copy's directory no copy uses (see
// copyScratch). The lock is taken to look, and released.
func staleScratch(d string) (bool, error) {
	fi, err := os.Lstat(d)
	if err != nil || !fi.IsDir() || (fi.Sys() != nil && int(fi.Sys().(*syscall.Stat_t).Uid) != os.Getuid()) {
		return false, err // not ours to remove
	}
	f, err := os.Open(d)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return false, nil // a copy runs with it
	}
	if _, err := os.Stat(filepath.Join(d, "owner")); err == nil {
		return true, nil
	}
	return time.Since(fi.ModTime()) > time.Hour, nil
}

// unmarkEmpty removes the mark of a failed copy into an etcd prefix that
// was empty and unmarked before it, if the prefix is empty still (the copy's first
// batch refused): nothing was copied, nothing is lost. With anything in
// the prefix — or its state not known — the mark stays. It does what it
// can after an interrupt (a context of its own, bounded).
func unmarkEmpty(target *etcd.Store) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if target.Fresh(ctx) != nil {
		return false
	}
	snap, err := target.View()
	if err != nil {
		return false
	}
	n, err := store.Count(snap)
	snap.Close()
	if err != nil || n != 0 {
		return false
	}
	if testHookUnmarkEmpty != nil {
		testHookUnmarkEmpty()
	}
	// The copy's batch on its way as it stopped may land yet: the mark
	// goes only with the prefix empty still.
	return target.UnmarkEmptyCopy(ctx) == nil
}

// testHookUnmarkEmpty, set by tests only, runs in unmarkEmpty once it
// found the prefix empty, before it removes the mark.
var testHookUnmarkEmpty func()

// stagedCopy is a copy into a bbolt file, made in a new file next to it
// (PATH.copying) and renamed over it once complete and synced: a copy
// killed or interrupted half-way leaves the target as it was. Half a copy in
// the target itself is damage (assignments whose index entries, later in
// key order, were not copied yet), which serve and the copy run again
// refuse.
type stagedCopy struct {
	path, tmp string
	old       *bolt.DB // the target as it was, held (locked) until replaced; nil if none
	lock      *os.File // a damaged target replaced (--force), locked until replaced
	db        *bolt.DB // the copy
}

// stagingPaths are the file a copy into path replaces — the file a
// symbolic link names, not the link — and the new file it is made in.
func stagingPaths(path string) (target, tmp string) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path, path + ".copying"
}

func stageCopy(path string, force bool) (*stagedCopy, error) {
	path, tmp := stagingPaths(path)
	s := &stagedCopy{path: path, tmp: tmp}
	fi, err := os.Stat(path)
	if err == nil {
		// Open checks it and locks it: not a store a server runs on.
		s.old, err = bolt.Open(path, bolt.Options{})
		var ce *bolt.CorruptError
		if errors.As(err, &ce) && force {
			// No server runs on a damaged file (serve refuses it); a
			// command reading it holds its lock.
			if s.lock, err = lockExclusive(path); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
	}
	if err := removeStale(s.tmp); err != nil {
		s.abort()
		return nil, err
	}
	if s.db, err = bolt.Open(s.tmp, bolt.Options{}); err != nil {
		s.abort()
		return nil, err
	}
	if fi != nil {
		// The new file takes the place of the old: keep who may read it.
		err := os.Chmod(s.tmp, fi.Mode().Perm())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && err == nil && int(st.Uid) != os.Getuid() {
			err = os.Chown(s.tmp, int(st.Uid), int(st.Gid))
		}
		if err != nil {
			s.abort()
			return nil, fmt.Errorf("giving %s the owner and mode of %s: %w", s.tmp, path, err)
		}
	}
	return s, nil
}

// lockExclusive takes the lock bbolt takes on a store file.
func lockExclusive(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s is locked by another process", path)
	}
	return f, nil
}

// removeStale removes what a copy killed before it finished left at tmp;
// one that is still running holds its lock.
func removeStale(tmp string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return fmt.Errorf("%s is locked: is another store copy into it running?", tmp)
	}
	return os.Remove(tmp)
}

// commit puts the copy in place of the target, durably.
func (s *stagedCopy) commit() error {
	db := s.db
	s.db = nil
	if err := db.Close(); err != nil { // every commit is fsynced already
		os.Remove(s.tmp)
		return err
	}
	err := placeDurably(s.tmp, s.path, "the copy")
	s.release()
	return err
}

// release releases the target as it was.
func (s *stagedCopy) release() {
	if s.old != nil {
		s.old.Close()
		s.old = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// abort removes the copy (if not yet in place) and releases the target.
func (s *stagedCopy) abort() {
	if s.db != nil {
		s.db.Close()
		s.db = nil
		os.Remove(s.tmp)
	}
	s.release()
}

// plain is err as a part of a longer message: a domain error's text
// without its "permatrix: CODE: " — main says "permatrix: " once, before the
// whole message ("permatrix: --from: permatrix: unavailable: …" said it
// twice) — still unwrapping to err.
func plain(err error) error {
	var pe *permatrix.Error
	if !errors.As(err, &pe) {
		return err
	}
	return &plainError{err: err, domain: pe}
}

type plainError struct {
	err    error
	domain *permatrix.Error
}

func (e *plainError) Error() string {
	return strings.Replace(e.err.Error(), e.domain.Error(), e.domain.Message, 1)
}

func (e *plainError) Unwrap() error { return e.err }

// copyOpenError says why a side of a copy did not open; a damaged bbolt
// file exits 3, as `store check` and `serve` do.
func copyOpenError(cmd *cobra.Command, side string, err error) error {
	var ce *bolt.CorruptError
	if errors.As(err, &ce) {
		fmt.Fprintf(cmd.ErrOrStderr(), "permatrix: %s: %v\n", side, err)
		return exitError{exitStoreDamaged}
	}
	return fmt.Errorf("%s: %w", side, plain(err))
}

// distinctStores refuses a copy of a store onto itself named the same
// way, before anything is opened. Named two ways: a bbolt file,
// distinctFiles; an etcd prefix, distinctPrefixes.
func distinctStores(from, to string) error {
	if from == to {
		return errors.New("--from and --to are the same store")
	}
	return nil
}

// distinctPrefixes refuses a copy between two etcd prefixes of one cluster
// that share keys (etcd.PrefixesOverlap): the same prefix however the URLs
// name it — another member, another name of a host, another spelling of
// the prefix — or one inside the other. The copy would write into what it
// reads, and --force delete it. The cluster is known by the id its
// members answer with, not by the endpoints as written. Nothing of either
// prefix is written before (opening an etcd store reads it only).
func distinctPrefixes(ctx context.Context, from, to store.Backend, fromName, toName string) error {
	f, _ := from.(*etcd.Store)
	t, _ := to.(*etcd.Store)
	if f == nil || t == nil || !etcd.PrefixesOverlap(f.Prefix(), t.Prefix()) {
		return nil
	}
	fid, err := f.ClusterID(ctx)
	if err != nil {
		return fmt.Errorf("--from %s: %w", fromName, plain(err))
	}
	tid, err := t.ClusterID(ctx)
	if err != nil {
		return fmt.Errorf("--to %s: %w", toName, plain(err))
	}
	if fid != tid {
		return nil
	}
	fp, tp := f.Prefix(), t.Prefix()
	if fp == tp {
		return fmt.Errorf("--from %s and --to %s are the same store: etcd cluster %x, the same prefix %s", fromName, toName, fid, fp)
	}
	inner, outer := fp, tp
	if len(tp) > len(fp) {
		inner, outer = tp, fp
	}
	return fmt.Errorf("--from %s and --to %s are the same store in part: etcd cluster %x, and prefix %s is inside %s (its keys are the other's: the copy would write into what it reads, and with --force delete it)", fromName, toName, fid, inner, outer)
}

// distinctFiles refuses a copy of a bbolt file (from, whose FileInfo is
// fi) onto itself named another way: ./a.db and a.db, a symbolic or a hard
// link. bbolt's lock refused it too, but as a store "locked by another
// process", which sent the operator looking for one.
func distinctFiles(fi os.FileInfo, from, to string) error {
	// Nor the file a copy into to is made in, made anew by the copy (it
	// was refused as locked by "another store copy into it", none running).
	_, tmp := stagingPaths(to)
	if si, err := os.Stat(tmp); err == nil && os.SameFile(fi, si) {
		return fmt.Errorf("--from bolt:%s is the file a copy into --to bolt:%s is made in (%s, renamed over it once complete): copy it to another file first, or copy it into another --to", from, to, tmp)
	}
	ti, err := os.Stat(to)
	if err != nil {
		return nil // no file there (made by the copy), or one the copy cannot open either
	}
	if os.SameFile(fi, ti) {
		return fmt.Errorf("--from bolt:%s and --to bolt:%s are the same store: they name one file", from, to)
	}
	return nil
}

// waitReadable waits until a store answers a snapshot (an etcd store's
// replica is loaded first).
func waitReadable(ctx context.Context, b store.Backend) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		snap, err := b.View()
		if err == nil {
			return snap.Close()
		}
		// Only a replica being loaded becomes readable by waiting.
		var ic *etcd.IncompleteCopyError
		if errors.As(err, &ic) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
