package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/internal/bolt"
)

type backupOptions struct {
	server                string
	adminToken, tokenFile string
	force                 bool
}

func newStoreBackup() *cobra.Command {
	o := backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup [--server URL] FILE",
		Short: "Back up a running server's store to a file (exit 0 backed up, 3 the copy received was damaged, 2 other errors)",
		Long: `Back up the store of a running permatrix serve without stopping it: the server
sends its bbolt file as it was at one revision (GET /v1/backup, made from one
read transaction while writes go on), written here to FILE.tmp, synced,
checked as store check does — and found at the revision the server announced —
and only then renamed to FILE. A copy cut short (exit 2) or damaged on the way
(exit 3) is not kept: FILE is as it was, never half-written. It needs the admin
token (--admin-token-file, --admin-token or PERMATRIX_ADMIN_TOKEN, as serve).
An existing FILE is replaced with --force only, and never while a process has
it open as a store (the server's own file, given by mistake).

Restore it with serve stopped: permatrix store copy --from bolt:FILE
--to bolt:permatrix.db --force (docs/security.md). A sidecar whose store is on
etcd has no file to back up: copy the cluster with permatrix store copy
--from etcd://… --to bolt:FILE, which works while the sidecars run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runStoreBackup(cmd, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "http://127.0.0.1:8181", "URL of the running permatrix (or unix:///path/to/permatrix.sock)")
	f.StringVar(&o.adminToken, "admin-token", "", "the server's admin token")
	f.StringVar(&o.tokenFile, "admin-token-file", "", "file holding the server's admin token")
	f.BoolVar(&o.force, "force", false, "replace FILE if it exists")
	return cmd
}

func runStoreBackup(cmd *cobra.Command, o backupOptions, path string) error {
	token, err := backupToken(cmd, o)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		if !o.force {
			return fmt.Errorf("%s exists: give --force to replace it", path)
		}
		// Never over a store a process has open (the server's own file,
		// given by mistake: it would go on writing to the file replaced):
		// held until the backup is in its place.
		lock, err := lockExclusive(path)
		if err != nil {
			return fmt.Errorf("%w: it is not replaced", err)
		}
		defer lock.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c, err := client.New(o.server, client.WithToken(token))
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tmp := path + ".tmp"
	if err := removeStale(tmp); err != nil {
		return err
	}
	info, err := download(ctx, c, tmp)
	if err != nil {
		os.Remove(tmp)
		var e *client.Error
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("backup stopped: interrupted (%s is as it was)", path)
		case errors.As(err, &e):
			return fmt.Errorf("%s answered %d %s: %s", o.server, e.StatusCode, e.Code, e.Message)
		}
		return fmt.Errorf("backup failed: %w (%s is as it was)", err, path)
	}
	// What arrived is trusted only once it is a sound store at the revision
	// the server announced: a copy damaged on the way, or another file,
	// never takes FILE's place.
	r, err := bolt.Check(tmp)
	var problems []string
	var ce *bolt.CorruptError
	switch {
	case errors.As(err, &ce):
		problems = ce.Problems
	case err == nil && (r.Revision != info.Revision || r.Format != info.Format || r.Mode != "primary"):
		problems = []string{fmt.Sprintf("it is a %s store at revision %d (format %d); the server announced revision %d (format %d)",
			r.Mode, r.Revision, r.Format, info.Revision, info.Format)}
	}
	if err != nil || problems != nil {
		os.Remove(tmp)
		if problems != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "permatrix: the copy received from %s is damaged and was not kept (%s is as it was); back up again:\n  %s\n",
				o.server, path, strings.Join(problems, "\n  "))
			return exitError{exitStoreDamaged}
		}
		return fmt.Errorf("checking the copy received: %w (%s is as it was)", err, path)
	}
	if err := placeDurably(tmp, path, "the backup"); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s: revision %d, %d assignments, %d memberships, %d roles, %d projects (%d bytes)\n",
		o.server, path, r.Revision, r.Assignments, r.Memberships, r.Roles, r.Projects, info.Size)
	return nil
}

// download writes the server's backup to tmp (a new file, mode 0600: it
// holds authorization data) and syncs it, holding the lock removeStale
// respects meanwhile.
func download(ctx context.Context, c *client.Client, tmp string) (client.BackupInfo, error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return client.BackupInfo{}, err
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return client.BackupInfo{}, fmt.Errorf("%s is locked: is another store backup into it running?", tmp)
	}
	info, err := c.Backup(ctx, f)
	if err != nil {
		return info, err
	}
	if err := f.Sync(); err != nil {
		return info, err
	}
	return info, f.Close()
}

// backupToken is the admin token from the flags (or the environment), as
// serve reads it, but never a generated one.
func backupToken(cmd *cobra.Command, o backupOptions) (string, error) {
	t, err := givenAdminToken(cmd.Flags(), o.adminToken, o.tokenFile)
	if err == nil && t == "" {
		err = errors.New("give the server's admin token: --admin-token-file, --admin-token or PERMATRIX_ADMIN_TOKEN")
	}
	return t, err
}
