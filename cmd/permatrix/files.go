package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// tryLock takes the exclusive lock bbolt takes on a store file (flock), on
// any open file or directory, without waiting: the commands that copy,
// back up or clean up use it to tell a file another process is writing
// from one a killed process left.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// placeDurably renames tmp (complete and synced) to path and syncs their
// directory, so the rename survives a crash too; what is the file's name
// in the error ("the copy", "the backup"). If the rename fails, tmp is
// removed.
func placeDurably(tmp, path, what string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err == nil {
		err = dir.Sync()
		dir.Close()
	}
	if err != nil {
		return fmt.Errorf("%s is in place, but syncing its directory failed: %w", what, err)
	}
	return nil
}
