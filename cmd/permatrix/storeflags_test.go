package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
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
// both in the environment, or both in the configuration file) they are
// refused; otherwise the higher of command line, environment and file wins,
// as for every flag — so the image's PERMATRIX_DB does not stop
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
		// An empty file name (PERMATRIX_DB= in a manifest) is an error that
		// says so, not "open : no such file or directory".
		{[]string{"--db", ""}, nil, "", ""},
		{nil, map[string]string{"PERMATRIX_DB": ""}, "", ""},
		// The configuration file is below both: the environment and the
		// command line beat its store.db or store.url.
		{nil, map[string]string{"PERMATRIX_STORE": "etcd://h:2379/p", "file": "store:\n  db: f.db\n"}, "etcd", "etcd://h:2379/p"},
		{nil, map[string]string{"PERMATRIX_DB": "e.db", "file": "store:\n  url: etcd://h:2379/p\n"}, "bolt", "e.db"},
		{[]string{"--store", "bolt:z.db"}, map[string]string{"file": "store:\n  db: f.db\n"}, "bolt", "z.db"},
		{[]string{"--db", "y.db"}, map[string]string{"file": "store:\n  url: etcd://h:2379/p\n"}, "bolt", "y.db"},
		{nil, map[string]string{"file": "store:\n  url: bolt:z.db\n  db: f.db\n"}, "", ""},
		{nil, map[string]string{"file": "store:\n  db: f.db\n"}, "bolt", "f.db"},
	} {
		file := c.env["file"]
		delete(c.env, "file")
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		o, f, err := serveStoreFlags(t, c.args, file)
		if err != nil && c.kind == "" && strings.Contains(err.Error(), "give one of") {
			continue // both in the file: the file is refused
		} else if err != nil {
			t.Fatal(err)
		}
		kind, where, err := o.target(f)
		if kind != c.kind || where != c.path || (c.kind == "") != (err != nil) {
			t.Fatalf("%v %v %q: %q %q %v", c.args, c.env, file, kind, where, err)
		}
		for k := range c.env {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// A secret and the file holding it (--admin-token and --admin-token-file,
// --etcd-password and --etcd-password-file) are one setting: given at two
// levels, the higher wins (command line, environment, file); at one level
// they are refused.
func TestSecretAndItsFilePrecedence(t *testing.T) {
	for _, pair := range [][2]string{{"admin-token", "admin-token-file"}, {"etcd-password", "etcd-password-file"}} {
		env := func(flag string) string { return "PERMATRIX_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")) }
		key := map[string]string{"admin-token": "server:\n  admin_token: s\n", "admin-token-file": "server:\n  admin_token_file: f\n",
			"etcd-password": "store:\n  etcd:\n    password: s\n", "etcd-password-file": "store:\n  etcd:\n    password_file: f\n"}
		both := map[string]string{"admin-token": "server:\n  admin_token: s\n  admin_token_file: f\n",
			"etcd-password": "store:\n  etcd:\n    password: s\n    password_file: f\n"}
		for _, c := range []struct {
			args []string
			env  map[string]string
			file string
			want string // "" for the error
		}{
			{[]string{"--" + pair[0], "s", "--" + pair[1], "f"}, nil, "", ""},
			{nil, map[string]string{env(pair[0]): "s", env(pair[1]): "f"}, "", ""},
			{nil, nil, both[pair[0]], ""},
			{[]string{"--" + pair[0], "s"}, map[string]string{env(pair[1]): "f"}, "", pair[0]},
			{[]string{"--" + pair[1], "f"}, map[string]string{env(pair[0]): "s"}, "", pair[1]},
			{nil, map[string]string{env(pair[0]): "s"}, key[pair[1]], pair[0]},
			{nil, map[string]string{env(pair[1]): "f"}, key[pair[0]], pair[1]},
		} {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			f := newServe().Flags()
			if err := f.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if err := bindEnv(f); err != nil {
				t.Fatal(err)
			}
			if c.file != "" {
				cf, err := config.Parse("permatrix.yaml", []byte(c.file))
				if err != nil && c.want == "" && strings.Contains(err.Error(), "give one of") {
					continue // both in the file: the file is refused
				} else if err != nil {
					t.Fatalf("%q: %v", c.file, err)
				}
				if err := cf.Apply(f); err != nil {
					t.Fatal(err)
				}
			}
			got, err := preferred(f, pair[0], pair[1])
			if got != c.want || (c.want == "") != (err != nil) {
				t.Errorf("%v %v %q: %q %v, want %q", c.args, c.env, c.file, got, err, c.want)
			}
			for k := range c.env {
				os.Unsetenv(k)
			}
		}
	}
}

// TestFleetFlagsNeedEtcd: a fleet's flag with a bbolt store is refused,
// naming it, instead of being silently unused (noticed by the docs audit:
// serve --max-staleness 30s --replica /x --etcd-username u started on the
// bbolt file without a word).
func TestFleetFlagsNeedEtcd(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{[]string{"--max-staleness", "30s"}, nil, "--max-staleness"},
		{[]string{"--replica", "/x.db"}, nil, "--replica"},
		{[]string{"--db", "a.db", "--etcd-username", "u"}, nil, "--etcd-username"},
		{nil, map[string]string{"PERMATRIX_ETCD_PASSWORD_FILE": "/run/secrets/pw"}, "--etcd-password-file"},
		{[]string{"--store", "bolt:a.db", "--etcd-timeout", "1s"}, nil, "--etcd-timeout"},
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
		dir := t.TempDir()
		if o.db == defaultDB {
			o.db = filepath.Join(dir, "p.db")
		}
		db, _, err := o.open(context.Background(), f, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			db.Close()
			t.Errorf("%v %v: opened a bbolt store", c.args, c.env)
		} else if !strings.Contains(err.Error(), c.flag+" is for an etcd store") {
			t.Errorf("%v %v: %v, want it to name %s", c.args, c.env, err, c.flag)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// TestStoreURLCredentialsHidden: a --store refused for credentials in it,
// or for not being a store URL, is refused without repeating the password.
func TestStoreURLCredentialsHidden(t *testing.T) {
	for _, u := range []string{"etcd://root:s3cr3t@h1:2379/pm", "http://root:s3cr3t@h1:2379/pm"} {
		if _, _, err := (storeOptions{url: u}).target(nil); err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// A --store URL of another scheme that url.Parse refuses (here a bad port)
// is named in the refusal without its password: the redaction does not
// depend on the URL parsing.
func TestStoreURLRefusalHidesPassword(t *testing.T) {
	for _, u := range []string{"etcdd://root:s3cret@h1:x/permatrix", "http://root:s3cret@h1:2379/permatrix?token=s3cret"} {
		_, _, err := storeOptions{url: u}.kind(nil)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx@h1") {
			t.Errorf("--store %s: %v", u, err)
		}
	}
}

// --store-resident (store.resident, PERMATRIX_STORE_RESIDENT) keeps the
// pages of the policies' document mapped (bolt.Options.Resident) unless
// turned off; commands other than serve do not keep them.
func TestStoreResident(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		file string
		want bool
	}{
		{nil, "", "", true},
		{[]string{"--store-resident=false"}, "", "", false},
		{nil, "false", "", false},
		{nil, "", "store:\n  resident: false\n", false},
		{[]string{"--store-resident=true"}, "", "store:\n  resident: false\n", true},
	} {
		if c.env != "" {
			t.Setenv("PERMATRIX_STORE_RESIDENT", c.env)
		}
		o, _, err := serveStoreFlags(t, c.args, c.file)
		if err != nil {
			t.Fatal(err)
		}
		got := o.residentPrefix()
		if (got != nil) != c.want || (got != nil && !bytes.Equal(got, store.DocumentPrefix())) {
			t.Errorf("%v env %q file %q: resident prefix %q, want kept %v", c.args, c.env, c.file, got, c.want)
		}
		os.Unsetenv("PERMATRIX_STORE_RESIDENT")
	}
	o := storeOptions{}
	o.register(pflag.NewFlagSet("import", pflag.ContinueOnError), false)
	if p := o.residentPrefix(); p != nil {
		t.Errorf("import keeps pages resident: %q", p)
	}
}

// serveStoreFlags are serve's store options set as serve sets them: from
// args, the environment, then the configuration file's text (none if
// ""), whose refusal is the error.
func serveStoreFlags(t *testing.T, args []string, file string) (*storeOptions, *pflag.FlagSet, error) {
	t.Helper()
	o := &storeOptions{}
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.register(f, true)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(f); err != nil {
		t.Fatal(err)
	}
	if file == "" {
		return o, f, nil
	}
	cf, err := config.Parse("permatrix.yaml", []byte(file))
	if err != nil {
		return o, f, err
	}
	if err := cf.Apply(f); err != nil {
		t.Fatal(err)
	}
	return o, f, nil
}
