package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix/internal/etcd"
)

// TLS files with a plain-text etcd:// URL are refused: the etcd client
// would not use them, and the sidecar would talk to etcd in the clear.
func TestEtcdTLSFilesNeedEtcds(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, e := range []etcd.Options{{CAFile: "ca.pem"}, {CertFile: "c.pem", KeyFile: "k.pem"}} {
		o := storeOptions{url: "etcd://127.0.0.1:1/p", replica: filepath.Join(t.TempDir(), "r.db"), etcd: e}
		_, _, err := o.open(context.Background(), nil, log)
		if err == nil || !strings.Contains(err.Error(), "etcds://") {
			t.Fatalf("%+v: %v", e, err)
		}
	}
}

// --store and --db name the same thing: given both on the command line (or
// both in the environment) they are refused; otherwise the command line
// wins, as for every flag — so the image's PERMATRIX_DB does not stop
// `serve --store etcd://…`.
func TestStoreAndDBPrecedence(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		kind string // "" for the error
		path string
	}{
		{nil, nil, "bolt", defaultDB},
		{[]string{"--db", "x.db"}, nil, "bolt", "x.db"},
		{[]string{"--store", "etcd://h:2379/p"}, map[string]string{"PERMATRIX_DB": "/var/lib/permatrix/permatrix.db"}, "etcd", "etcd://h:2379/p"},
		{[]string{"--db", "y.db"}, map[string]string{"PERMATRIX_STORE": "etcd://h:2379/p"}, "bolt", "y.db"},
		{[]string{"--store", "bolt:z.db", "--db", "y.db"}, nil, "", ""},
		{nil, map[string]string{"PERMATRIX_STORE": "bolt:z.db", "PERMATRIX_DB": "y.db"}, "", ""},
		{nil, map[string]string{"PERMATRIX_STORE": "etcd://h:2379/p"}, "etcd", "etcd://h:2379/p"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		o := storeOptions{}
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.register(f, true)
		if err := f.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if err := bindEnv(f); err != nil {
			t.Fatal(err)
		}
		kind, where, err := o.target(f)
		if kind != c.kind || where != c.path || (c.kind == "") != (err != nil) {
			t.Fatalf("%v %v: %q %q %v", c.args, c.env, kind, where, err)
		}
		for k := range c.env {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}
