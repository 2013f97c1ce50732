// Package watch calls back when files under a path change, once the
// changes have settled: an editor's save, a `git checkout` or a bundle
// build is a burst of events that should cause one reload, not many.
package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Start watches path — a directory tree, or a single file (watched through
// its directory, so that replacing it by rename is seen) — and calls
// changed after each burst of changes, when no event has come for
// debounce. Watch errors go to failed. It returns once the watches are in
// place; they end with ctx.
func Start(ctx context.Context, path string, debounce time.Duration, changed func(), failed func(error)) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	tree := fi.IsDir()
	if tree {
		err = addTree(w, abs)
	} else {
		err = w.Add(filepath.Dir(abs))
	}
	if err != nil {
		_ = w.Close()
		return err
	}
	go loop(ctx, w, abs, tree, debounce, changed, failed)
	return nil
}

func loop(ctx context.Context, w *fsnotify.Watcher, path string, tree bool, debounce time.Duration, changed func(), failed func(error)) {
	defer w.Close()
	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if !tree && filepath.Clean(ev.Name) != path {
				continue // another file in the bundle file's directory
			}
			if tree && ev.Has(fsnotify.Create) {
				// A new directory (e.g. a new vendor folder) is watched too.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := addTree(w, ev.Name); err != nil {
						failed(err)
					}
				}
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			failed(err)
		case <-timer.C:
			changed()
		}
	}
}

// addTree watches dir and every directory under it (inotify is not
// recursive).
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.IsDir() {
			return w.Add(p)
		}
		return nil
	})
}
