package authoring_test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// tarFiles reads a .tar.gz into name → content.
func tarFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(h.Name, "/")] = b
	}
}

// storeData is data.store with alice holding Celonis Task Mining admin:
// what GET /v1/export would give, passed to stock opa beside the bundle.
const storeData = `{"store": {"revision": 7, "grants": {"user:alice": {"celonis-task-mining": {"role": {"admin": {"service":
  {"kind": "role", "role": "admin", "scope": {"type": "service"}, "via": "user:alice", "assignment": "a1"}}}}}}}}`

const aliceEditsUsers = `{"subject": "alice", "system": "celonis-task-mining", "action": "edit_users"}`

// TestBundleBuildReadByStockOPA: the repository's bundle is a standard OPA
// bundle: the manifest's roots and revision, no tests, and stock `opa eval
// -b` decides with it.
func TestBundleBuildReadByStockOPA(t *testing.T) {
	opa := harness.StockOPA(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar.gz")
	stdout, errOut, code := permatrix(t, "", "bundle", "build", "-o", out)
	if code != 0 || !strings.Contains(stdout, "unsigned") {
		t.Fatalf("bundle build: exit %d\n%s%s", code, stdout, errOut)
	}
	files := tarFiles(t, out)
	var manifest struct {
		Revision    string            `json:"revision"`
		Roots       []string          `json:"roots"`
		RegoVersion int               `json:"rego_version"`
		Metadata    map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(files[".manifest"], &manifest); err != nil {
		t.Fatalf(".manifest: %v (files: %v)", err, keys(files))
	}
	if !slices.Equal(manifest.Roots, []string{"permatrix", "systems"}) || !strings.HasPrefix(manifest.Revision, "sha256:") ||
		manifest.RegoVersion != 1 || manifest.Metadata["name"] != "permatrix" {
		t.Fatalf(".manifest: %s", files[".manifest"])
	}
	if !strings.Contains(stdout, manifest.Revision) {
		t.Fatalf("output names no revision %s: %s", manifest.Revision, stdout)
	}
	if _, ok := files["policies/permatrix/permatrix.rego"]; !ok {
		t.Fatalf("no policies/permatrix/permatrix.rego in %v", keys(files))
	}
	for name := range files {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("test file %s in the bundle", name)
		}
	}
	var data map[string]map[string]any
	if err := json.Unmarshal(files["data.json"], &data); err != nil || data["systems"]["celonis-task-mining"] == nil || data["store"] != nil {
		t.Fatalf("data.json: %v, keys %v", err, keys(files))
	}

	// The same content builds the same revision.
	again := filepath.Join(dir, "again.tar.gz")
	if s, _, _ := permatrix(t, "", "bundle", "build", "-o", again); !strings.Contains(s, manifest.Revision) {
		t.Fatalf("rebuild gave another revision: %s", s)
	}

	store := filepath.Join(dir, "store.json")
	input := filepath.Join(dir, "input.json")
	writeFile(t, store, storeData)
	writeFile(t, input, aliceEditsUsers)
	res, errOut, code := run(t, dir, opa, "eval", "-b", out, "-d", store, "-i", input, "--format", "raw", "data.permatrix.allow")
	if code != 0 || strings.TrimSpace(res) != "true" {
		t.Fatalf("opa eval -b: exit %d %q %s", code, res, errOut)
	}
	res, _, _ = run(t, dir, opa, "eval", "-b", out, "-i", input, "--format", "raw", "data.permatrix.allow")
	if strings.TrimSpace(res) != "false" {
		t.Fatalf("opa eval -b without the store: %q", res)
	}
}

// TestSignedBundle: bundle build --signing-key writes a signature that
// serve --verification-key and stock opa verify, and a wrong key or an
// unsigned bundle is refused.
func TestSignedBundle(t *testing.T) {
	opa := harness.StockOPA(t)
	dir := t.TempDir()
	priv, pub := rsaKeys(t, dir, "signer")
	_, otherPub := rsaKeys(t, dir, "other")

	signed := filepath.Join(dir, "signed.tar.gz")
	stdout, errOut, code := permatrix(t, "", "bundle", "build", "-o", signed, "--signing-key", priv, "--signing-key-id", "ci")
	if code != 0 || !strings.Contains(stdout, `signed (RS256, key id "ci")`) {
		t.Fatalf("signed build: exit %d\n%s%s", code, stdout, errOut)
	}
	if _, ok := tarFiles(t, signed)[".signatures.json"]; !ok {
		t.Fatal("no .signatures.json in the signed bundle")
	}

	// Stock opa verifies it (opa build verifies the bundles it reads).
	if _, errOut, code := run(t, dir, opa, "build", "-b", signed, "--verification-key", pub, "--verification-key-id", "ci", "-o", filepath.Join(dir, "x.tar.gz")); code != 0 {
		t.Fatalf("stock opa does not verify the signature: %s", errOut)
	}
	if _, _, code := run(t, dir, opa, "build", "-b", signed, "--verification-key", otherPub, "--verification-key-id", "ci", "-o", filepath.Join(dir, "y.tar.gz")); code == 0 {
		t.Fatal("stock opa verified the signature with another key")
	}

	// serve verifies it, and decides with it.
	s := serve(t, "--bundle", signed, "--verification-key", pub, "--verification-key-id", "ci")
	s.assign(t, `{"subject":"user:alice","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}`)
	if !s.allowed(t, aliceEditsUsers) {
		t.Fatal("the signed bundle does not decide")
	}
	s.stop(t)

	refused := []struct {
		name string
		args []string
		want string
	}{
		{"wrong key", []string{"--bundle", signed, "--verification-key", otherPub, "--verification-key-id", "ci"}, "verification error"},
		{"unsigned bundle", []string{"--bundle", unsigned(t, dir), "--verification-key", pub}, "signatures"},
		{"repository tree", []string{"--bundle", ".", "--verification-key", pub}, "not signed"},
	}
	for _, r := range refused {
		s, err := startServe(t, r.args...)
		if err == nil {
			t.Fatalf("%s: serve started", r.name)
		}
		if !strings.Contains(s.Logs()+err.Error(), r.want) {
			t.Fatalf("%s: want %q in\n%s", r.name, r.want, s.Logs())
		}
	}

	// HMAC.
	hs := filepath.Join(dir, "hs.tar.gz")
	if _, errOut, code := permatrix(t, "", "bundle", "build", "-o", hs, "--signing-key", "s3cret", "--signing-alg", "HS256"); code != 0 {
		t.Fatalf("HS256 build: %s", errOut)
	}
	s = serve(t, "--bundle", hs, "--verification-key", "s3cret", "--verification-alg", "HS256")
	s.stop(t)
	if s, err := startServe(t, "--bundle", hs, "--verification-key", "wrong", "--verification-alg", "HS256"); err == nil {
		t.Fatalf("HS256 with the wrong secret started:\n%s", s.Logs())
	}
}

func unsigned(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "unsigned.tar.gz")
	if _, errOut, code := permatrix(t, "", "bundle", "build", "-o", out); code != 0 {
		t.Fatal(errOut)
	}
	return out
}

func rsaKeys(t *testing.T, dir, name string) (privPath, pubPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")
	writeFile(t, privPath, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	writeFile(t, pubPath, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))
	return privPath, pubPath
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
