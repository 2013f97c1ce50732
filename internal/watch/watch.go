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
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Start watches path — a directory tree, or a single file (watched through
// its directory, so that replacing it by rename is seen) — and calls
// changed after each burst of changes, when no event has come for
// debounce. In a tree, only files a bundle is read from (Rego, JSON, YAML,
// .manifest, Wasm) and directories count. A directory reached through a symlink (a "current" link to
// the deployed release) is watched where the link points, and the link
// through its directory: pointing it elsewhere is a change, and the new
// tree is watched from then on. A single file reached through symlinks (a
// Kubernetes ConfigMap or Secret mount: bundle.tar.gz → ..data/bundle.tar.gz,
// ..data → a timestamped directory swapped on update) is watched where it
// resolves to as well as through the directory of every link on the way:
// an event in any of them after which the path resolves to another file is
// a change, as is one on that file or on one of those links. Watch errors
// go to failed. It returns once the watches are in place; they end with
// ctx. Files named in ignore (serve's decision log: decisions.json in the
// repository is a bundle's name) never count.
func Start(ctx context.Context, path string, debounce time.Duration, changed func(), failed func(error), ignore ...string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	ignored := make(map[string]bool, len(ignore))
	for _, p := range ignore {
		if p, err := resolved(p); err == nil {
			ignored[p] = true
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	x := &watcher{w: w, path: abs, tree: fi.IsDir(), ignored: ignored}
	switch {
	case !x.tree:
		err = x.watchFile()
	default:
		if li, lerr := os.Lstat(abs); lerr == nil && li.Mode()&os.ModeSymlink != 0 {
			x.link = true
			err = w.Add(filepath.Dir(abs))
		}
		if err == nil {
			err = x.watchTree()
		}
	}
	if err != nil {
		_ = w.Close()
		return err
	}
	go x.loop(ctx, debounce, changed, failed)
	return nil
}

type watcher struct {
	w    *fsnotify.Watcher
	path string // absolute, as given
	tree bool   // path is a directory
	link bool   // path is a symlink to the directory
	root string // the directory, symlinks resolved: events of the tree name paths under it
	// A single file: target is the file path resolves to, names the links
	// on the way there and target (symlinks resolved in their
	// directories), dirs the directories holding them — all watched.
	target string
	names  []string
	dirs   []string
	// ignored are files whose events never count, absolute with the
	// symlinks of their directories resolved.
	ignored map[string]bool
}

// resolved is p absolute, with the symlinks of its directory resolved (as
// the tree's events name files), whether or not p exists.
func resolved(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// watchFile watches the directories of a single file and of every link on
// the way to it.
func (x *watcher) watchFile() error {
	target, names, err := resolve(x.path)
	if err != nil {
		return err
	}
	_, err = x.watchChain(target, names)
	return err
}

// resolve is the file path resolves to, and the entries that decide it:
// every symlink met on the way (as the path of its entry, in a directory
// with no symlink in its own path) and the file itself. Pointing any of
// those links elsewhere can change the file path names, so each of their
// directories is watched — a link to a file under a "current" release
// link, a path whose directory is a link, a ConfigMap's ..data. When an
// entry is missing (a not-exist error) the names end with it: its
// directory is where it will appear.
func resolve(path string) (target string, names []string, err error) {
	resolved, rest := "/", strings.Split(path, "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", append(names, next), err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > 255 {
			return "", nil, &os.PathError{Op: "resolve", Path: path, Err: errors.New("too many links")}
		}
		dest, err := os.Readlink(next)
		if err != nil {
			return "", nil, err
		}
		names = append(names, next)
		if filepath.IsAbs(dest) {
			resolved = "/"
		}
		rest = append(strings.Split(dest, "/"), rest...)
	}
	return resolved, append(names, resolved), nil
}

// watchChain watches the directories of names (a resolution of path to
// target, "" if it does not resolve), and stops watching those of the
// previous one it no longer needs. again reports a directory newly watched
// (what appeared in it before is not an event: resolve again) or gone
// before it could be.
func (x *watcher) watchChain(target string, names []string) (again bool, err error) {
	var dirs []string
	for _, n := range names {
		if d := filepath.Dir(n); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range x.dirs {
		if !slices.Contains(dirs, d) {
			_ = x.w.Remove(d) // may be gone already (an old ConfigMap directory)
		}
	}
	x.target, x.names, x.dirs = target, names, dirs
	// Not those of x.dirs: a directory removed (and made again) is no longer
	// in the watch list.
	watched := x.w.WatchList()
	var errs []error
	for _, d := range dirs {
		if slices.Contains(watched, d) {
			continue
		}
		again = true
		if err := x.w.Add(d); !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return again, errors.Join(errs...)
}

// fileChanged reports whether an event on name changes what the single file
// path names: an event on the file or on a link on the way to it (or on
// the entry missing on the way), or one after which path resolves to
// another file (a link replaced, a directory link swapped) or to none (a
// dangling link, a directory removed: the reload's error to report).
func (x *watcher) fileChanged(name string, failed func(error)) bool {
	moved := false
	for range 8 {
		target, names, err := resolve(x.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			break // watched as before (a link loop: the reload's error)
		}
		moved = moved || target != x.target
		again, err := x.watchChain(target, names)
		if err != nil {
			failed(err)
		}
		if !again {
			break
		}
	}
	return moved || slices.Contains(x.names, name)
}

// watchTree watches the tree path points to, and stops watching the one
// it pointed to before.
func (x *watcher) watchTree() error {
	root, err := filepath.EvalSymlinks(x.path)
	if err != nil {
		return err
	}
	if x.root != "" && root != x.root {
		for _, p := range x.w.WatchList() {
			if within(p, x.root) && (!x.link || p != filepath.Dir(x.path)) {
				_ = x.w.Remove(p)
			}
		}
	}
	x.root = root
	return addTree(x.w, root)
}

// relevant reports whether ev changes what path names.
func (x *watcher) relevant(ev fsnotify.Event, failed func(error)) bool {
	name := filepath.Clean(ev.Name)
	if !x.tree {
		return x.fileChanged(name, failed) // not another file in its directories
	}
	if x.link && name == x.path {
		// The link was replaced or removed: watch where it points now (a
		// dangling link is the reload's error to report).
		if _, err := os.Stat(x.path); err == nil {
			if err := x.watchTree(); err != nil {
				failed(err)
			}
		}
		return true
	}
	if !within(name, x.root) || x.ignored[name] {
		return false // the link's directory: its other entries; or ignored
	}
	// Only what a bundle is read from, or a directory (made, removed or
	// moved: what was in it), is a change. The store's file (./permatrix.db
	// when `serve --bundle . --watch` runs in the repository), a decision
	// log or an editor's swap file in the tree reloaded the bundle on
	// every write, and writes coming faster than the debounce held back
	// the reload of a real edit for as long as they came.
	switch {
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		// Gone: whether it was a directory can no longer be told (and
		// fsnotify drops a directory's watch as it goes), so any name
		// removed or moved is a change — rare, unlike writes.
		return true
	case ev.Has(fsnotify.Create):
		fi, err := os.Lstat(name)
		if err == nil && fi.IsDir() {
			// A new directory (e.g. a new vendor folder) is watched too.
			if err := addTree(x.w, name); err != nil {
				failed(err)
			}
			return true
		}
	}
	return bundleName(name)
}

// bundleName reports whether a file named so can be part of a bundle: Rego,
// data (JSON, YAML), OPA's .manifest and .signatures.json, Wasm. A
// directory is told by its event (changed); a file without an extension
// (the permatrix binary `go build` writes into the repository) is none.
func bundleName(name string) bool {
	switch filepath.Ext(name) {
	case ".rego", ".json", ".yaml", ".yml", ".manifest", ".wasm":
		return true
	}
	return false
}

func (x *watcher) loop(ctx context.Context, debounce time.Duration, changed func(), failed func(error)) {
	defer x.w.Close()
	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-x.w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod || !x.relevant(ev, failed) {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-x.w.Errors:
			if !ok {
				return
			}
			failed(err)
		case <-timer.C:
			// With the context ended too, select picks either at random:
			// a goroutine held up past both (a loaded machine) called
			// changed after the watch's end.
			if ctx.Err() != nil {
				return
			}
			changed()
		}
	}
}

// within reports whether p is dir or under it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
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
