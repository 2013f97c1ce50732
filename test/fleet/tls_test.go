package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/test/harness"
)

// An etcd that takes only TLS clients with a certificate of its CA, with
// authentication on and a user that may touch only the fleet's prefix:
// sidecars connect with the documented flags and environment (etcds://,
// --etcd-ca-file, --etcd-cert-file, --etcd-key-file, --etcd-username,
// --etcd-password-file or PERMATRIX_ETCD_PASSWORD), and so does store
// copy; a wrong password or a missing CA does not connect.
func TestEtcdTLSAndAuth(t *testing.T) {
	certs := harness.NewCerts(t)
	etcdBin, err := harness.BuildTool(filepath.Join("test", "tools", "etcd"), "etcd", "go.etcd.io/etcd/server/v3")
	if err != nil {
		t.Fatal(err)
	}
	client, cli := startTLSEtcd(t, etcdBin, certs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const prefix = "/tls-fleet/"
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "permatrix"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "permatrix", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "permatrix", "s3cret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "permatrix", "permatrix"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcd setup step %d: %v", i, err)
		}
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "etcd-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "etcds://" + strings.TrimPrefix(client, "https://") + strings.TrimSuffix(prefix, "/")
	tlsFlags := []string{"--etcd-ca-file", certs.CAFile, "--etcd-cert-file", certs.ClientCert, "--etcd-key-file", certs.ClientKey, "--etcd-username", "permatrix"}
	sidecar := func(name string, env []string, extra ...string) (*harness.Process, error) {
		args := append([]string{"--addr", "127.0.0.1:0", "--admin-token", token, "--store", url, "--replica", filepath.Join(dir, name+".db")}, tlsFlags...)
		return harness.StartProcess(t, bin, token, env, append(args, extra...)...)
	}

	// store copy into the secured etcd, with the same flags.
	src := filepath.Join(dir, "src.db")
	p, err := harness.StartProcess(t, bin, token, nil, "--addr", "127.0.0.1:0", "--admin-token", token, "--db", src)
	if err != nil {
		t.Fatal(err)
	}
	if code, raw := call(p, "POST", "/v1/assignments", grant("copied", "celonis-task-mining", "admin"), nil); code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	p.Stop(t)
	out, stderr, code := harness.Run(t, "", bin, append([]string{"store", "copy", "--from", "bolt:" + src, "--to", url, "--etcd-password-file", pwFile}, tlsFlags...)...)
	if code != 0 {
		t.Fatalf("store copy into etcds://: exit %d\n%s%s", code, out, stderr)
	}

	a, err := sidecar("a", nil, "--etcd-password-file", pwFile)
	if err != nil {
		t.Fatalf("sidecar a: %v\n%s", err, a.Logs())
	}
	b, err := sidecar("b", []string{"PERMATRIX_ETCD_PASSWORD=s3cret"})
	if err != nil {
		t.Fatalf("sidecar b: %v\n%s", err, b.Logs())
	}
	code, raw := call(a, "POST", "/v1/assignments", grant("tls-user", "celonis-task-mining", "admin"), nil)
	if code != 201 {
		t.Fatalf("write through a: %d %s\n%s", code, raw, a.Logs())
	}
	var w written
	json.Unmarshal(raw, &w)
	for _, c := range []string{
		fmt.Sprintf(`{"subject":"tls-user","system":"celonis-task-mining","action":"edit_users","min_revision":%d}`, w.Revision),
		`{"subject":"copied","system":"celonis-task-mining","action":"edit_users"}`,
	} {
		if code, raw := call(b, "POST", "/v1/check", c, nil); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
			t.Fatalf("check at b %s: %d %s\n%s", c, code, raw, b.Logs())
		}
	}
	// The password never shows in the effective configuration.
	if _, raw := call(b, "GET", "/v1/config", "", nil); bytes.Contains(raw, []byte("s3cret")) {
		t.Fatalf("/v1/config shows the etcd password: %s", raw)
	}

	// A wrong password: serve does not start.
	if p, err := sidecar("wrong", []string{"PERMATRIX_ETCD_PASSWORD=wrong"}); err == nil {
		t.Fatalf("a sidecar with a wrong etcd password started:\n%s", p.Logs())
	} else if !strings.Contains(p.Logs(), "authentication failed") {
		t.Fatalf("a wrong password: %v\n%s", err, p.Logs())
	}
	// Without the CA, the etcd servers' certificates are not trusted: serve
	// does not start either.
	tlsFlags = tlsFlags[2:]
	if p, err := sidecar("noca", nil, "--etcd-password-file", pwFile); err == nil {
		t.Fatalf("a sidecar that does not trust etcd's CA started:\n%s", p.Logs())
	} else if !strings.Contains(p.Logs(), "certificate signed by unknown authority") {
		t.Fatalf("no CA: %v\n%s", err, p.Logs())
	}
}

// startTLSEtcd starts a one-member etcd taking only TLS clients with a
// certificate of certs' CA, and a client of it. Its ports are held for the
// test (harness.HoldPort): etcd binds them beside the holding sockets,
// while the kernel gives them to no other test process asking for a free
// port. One found free before it was held can still be taken, and etcd
// then exits (address in use): an etcd that exits before it answers is
// started again on other ports (as harness.NewEtcdCluster does).
func startTLSEtcd(t *testing.T, etcdBin string, certs *harness.Certs) (string, *clientv3.Client) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		client := fmt.Sprintf("https://127.0.0.1:%d", harness.HoldPort(t))
		peer := fmt.Sprintf("http://127.0.0.1:%d", harness.HoldPort(t))
		cmd := exec.Command(etcdBin, "--name", "tls", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "tls="+peer,
			"--cert-file", certs.ServerCert, "--key-file", certs.ServerKey, "--trusted-ca-file", certs.CAFile, "--client-cert-auth",
			"--log-level", "warn")
		logs := &harness.LockedBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, TLS: certs.ClientTLS(true), DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// The wait ends when etcd does (a Status call to a port someone
		// else holds waits as long as its context).
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		go func() {
			select {
			case <-exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		for {
			if _, err = cli.Status(ctx, client); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		select {
		case <-exited:
			cli.Close()
			if attempt < 5 {
				t.Logf("etcd with TLS exited as it started (attempt %d), again on other ports:\n%s", attempt, logs.String())
				continue
			}
		default:
			if err == nil {
				t.Cleanup(func() { cli.Close() })
				return client, cli
			}
		}
		t.Fatalf("etcd with TLS did not start:\n%s", logs.String())
	}
}
