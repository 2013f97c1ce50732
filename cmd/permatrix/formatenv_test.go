package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// One PERMATRIX_FORMAT set the --format of export, replay, matrix and test,
// four flags of four meanings: an environment made for one (ndjson for
// export) broke the others ("--format ndjson" is no replay format). Each
// reads its own PERMATRIX_<COMMAND>_FORMAT; export also the old name, the
// new one winning.
func TestFormatEnvPerCommand(t *testing.T) {
	formatOf := func(command string) (string, error) {
		for _, c := range newRoot().Commands() {
			if c.Name() == command {
				err := bindEnv(c.Flags())
				return c.Flags().Lookup("format").Value.String(), err
			}
		}
		t.Fatalf("no command %s", command)
		return "", nil
	}
	t.Setenv("PERMATRIX_FORMAT", "ndjson")
	for command, want := range map[string]string{"export": "ndjson", "replay": "text", "matrix": "table", "test": "pretty"} {
		if got, err := formatOf(command); err != nil || got != want {
			t.Errorf("PERMATRIX_FORMAT=ndjson: %s --format %q (%v), want %q", command, got, err, want)
		}
	}
	for command, env := range map[string][2]string{
		"export": {"PERMATRIX_EXPORT_FORMAT", "json"},
		"replay": {"PERMATRIX_REPLAY_FORMAT", "json"},
		"matrix": {"PERMATRIX_MATRIX_FORMAT", "csv"},
		"test":   {"PERMATRIX_TEST_FORMAT", "json"},
	} {
		t.Setenv(env[0], env[1])
		if got, err := formatOf(command); err != nil || got != env[1] {
			t.Errorf("%s=%s: %s --format %q (%v)", env[0], env[1], command, got, err)
		}
	}
}

// Through the binary: PERMATRIX_EXPORT_FORMAT=ndjson writes import lines,
// and a PERMATRIX_FORMAT=ndjson beside it leaves matrix's table alone.
func TestFormatEnvBinary(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(file, []byte(grantBody("user:env", tm, "analyst", `{"type":"service"}`)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "p.db")
	if _, stderr, code := run(t, "import", file, "--db", db); code != 0 {
		t.Fatalf("import: %d %s", code, stderr)
	}
	runEnv := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		return string(out), err
	}
	out, err := runEnv([]string{"PERMATRIX_EXPORT_FORMAT=ndjson", "PERMATRIX_FORMAT=json"}, "export", "--db", db)
	if err != nil || !strings.HasPrefix(out, `{"export":`) || !strings.Contains(out, `"subject":"user:env"`) {
		t.Errorf("export with PERMATRIX_EXPORT_FORMAT=ndjson: %v\n%s", err, out)
	}
	out, err = runEnv([]string{"PERMATRIX_FORMAT=ndjson"}, "matrix", tm)
	if err != nil || !strings.Contains(out, "edit_users") || strings.HasPrefix(out, "{") {
		t.Errorf("matrix with PERMATRIX_FORMAT=ndjson: %v\n%s", err, out)
	}
}
