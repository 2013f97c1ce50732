package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shared binary is rebuilt exactly when its sources change: a caller
// never gets a stale one, an unchanged one is not linked again, and a
// caller's own link keeps the binary it was given.
func TestBuildLinkedRebuildsOnlyChangedSources(t *testing.T) {
	module, cache := t.TempDir(), t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(module, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	say := func(word string) {
		write("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\""+word+"\") }\n")
	}
	output := func(bin string) string {
		t.Helper()
		out, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		return string(out)
	}
	build := func() (string, os.FileInfo) {
		t.Helper()
		bin, remove, err := buildLinked(cache, module, ".", "hello")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(remove)
		shared, err := filepath.Glob(filepath.Join(cache, "hello-*", "hello"))
		if err != nil || len(shared) != 1 {
			t.Fatalf("the shared binary: %v %v", shared, err)
		}
		fi, err := os.Stat(shared[0])
		if err != nil {
			t.Fatal(err)
		}
		return bin, fi
	}
	write("go.mod", "module hello\n\ngo 1.22\n")
	say("one")
	first, built := build()
	if got := output(first); got != "one" {
		t.Fatalf("first build says %q", got)
	}
	again, unchanged := build()
	if !os.SameFile(built, unchanged) || again == first {
		t.Errorf("unchanged sources: the shared binary was replaced (%v), or two callers share one link (%s)", !os.SameFile(built, unchanged), again)
	}
	say("two")
	edited, rebuilt := build()
	if got := output(edited); got != "two" {
		t.Fatalf("after an edit the binary says %q: a stale binary", got)
	}
	if os.SameFile(built, rebuilt) {
		t.Error("after an edit the shared binary is the same file")
	}
	if got := output(first); got != "one" {
		t.Errorf("the first caller's binary changed under it: it says %q", got)
	}
	if runs, _ := filepath.Glob(filepath.Join(filepath.Dir(first), "..", "run-*")); len(runs) != 3 {
		t.Errorf("links: %s", strings.Join(runs, " "))
	}
}
