package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJWTIdentityRefusesTheSubjectHeader: --identity jwt with
// --allow-subject-header let X-Permatrix-Subject, a header any client can
// send, replace the subject of the token permatrix had just verified. No
// gateway needs both, so serve refuses the pair before it opens anything,
// from flags, the environment and the configuration file alike (exit 2, as
// for every value it refuses), naming both; config validate refuses the
// file (exit 1) at the key's line. With a header identity the flag is
// still taken.
func TestJWTIdentityRefusesTheSubjectHeader(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "p.db")
	jwt := []string{"--jwt-jwks", filepath.Join(dir, "jwks.json"), "--jwt-issuer", "https://idp.example", "--jwt-audience", "permatrix"}
	serve := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, jwt...)
	refused := func(what, out string, code, wantCode int) {
		t.Helper()
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s", what, code, wantCode, out)
		}
		for _, want := range []string{"--allow-subject-header", "--identity jwt", "identity.allow_subject_header", "identity.mode"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the error does not name %s:\n%s", what, want, out)
			}
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("%s: serve created the store before refusing its flags", what)
			os.Remove(db)
		}
	}

	_, stderr, code := run(t, append(serve, "--identity", "jwt", "--allow-subject-header")...)
	refused("flags", stderr, code, 2)

	t.Setenv("PERMATRIX_ALLOW_SUBJECT_HEADER", "true")
	_, stderr, code = run(t, append(serve, "--identity", "jwt")...)
	refused("PERMATRIX_ALLOW_SUBJECT_HEADER with --identity jwt", stderr, code, 2)
	os.Unsetenv("PERMATRIX_ALLOW_SUBJECT_HEADER")

	file := filepath.Join(dir, "permatrix.yaml")
	if err := os.WriteFile(file, []byte("identity:\n  mode: jwt\n  allow_subject_header: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, "config", "validate", file)
	refused("config validate", stderr, code, 1)
	if !strings.Contains(stderr, file+":3: identity.allow_subject_header: ") {
		t.Errorf("config validate: the problem is not at its key's line:\n%s", stderr)
	}
	_, stderr, code = run(t, append(serve, "--config", file)...)
	refused("serve --config", stderr, code, 2)

	// One from the file, the other from the command line.
	if err := os.WriteFile(file, []byte("identity:\n  mode: jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, append(serve, "--config", file, "--allow-subject-header")...)
	refused("the file's jwt, the flag's subject header", stderr, code, 2)

	// A header identity still takes it.
	if err := os.WriteFile(file, []byte("identity:\n  mode: header=X-Forwarded-User\n  allow_subject_header: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := run(t, "config", "validate", file); code != 0 || !strings.Contains(stdout, "valid") {
		t.Errorf("a header identity with the subject header: exit %d\n%s%s", code, stdout, stderr)
	}
}
