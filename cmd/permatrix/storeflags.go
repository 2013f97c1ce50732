package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/redact"
	"github.com/permatrix/permatrix/internal/store"
)

// storeOptions say which assignment store to open: a bbolt file (the
// embedded default) or an etcd cluster with a local replica.
type storeOptions struct {
	url     string // --store: bolt:PATH, etcd://h1:2379,h2:2379/prefix or etcds://…
	db      string // --db: short for --store bolt:PATH
	replica string
	etcd    etcd.Options
	pwFile  string
	probe   time.Duration
	// readOnly: a bbolt store is only read (store copy's source): opened
	// read-only (openReading).
	readOnly bool
	// resident: serve's --store-resident, the pages decisions read kept
	// mapped from the open on (bolt.Options.Resident).
	resident bool
}

const defaultDB = "./permatrix.db"

// register adds the store flags; replica adds those of a fleet sidecar.
func (o *storeOptions) register(f *pflag.FlagSet, fleet bool) {
	f.StringVar(&o.url, "store", "", "the assignment store: bolt:PATH (default: bolt:<--db>) or etcd://HOST:PORT[,HOST:PORT…]/PREFIX (etcds:// for TLS)")
	f.StringVar(&o.db, "db", defaultDB, "bbolt file of the assignment store (short for --store bolt:PATH)")
	o.registerEtcd(f)
	if fleet {
		f.StringVar(&o.replica, "replica", "./permatrix-replica.db", "with an etcd store: the local bbolt replica decisions read")
		f.DurationVar(&o.etcd.MaxStaleness, "max-staleness", 0, "with an etcd store: /health/ready fails after this long without contact with etcd (0: never)")
		f.DurationVar(&o.probe, "store-probe-interval", bolt.DefaultProbeInterval, "after a write fails for disk reasons (full, read-only, I/O error), probe the disk this often until it takes writes again; /health is 503 until then")
		f.BoolVar(&o.resident, "store-resident", true, "map the pages of the data decisions read (the bbolt file's, or the replica's) into memory when the store opens, not as decisions first read them: the first decisions as fast as later ones, for those pages in RSS from the start (~410 MiB at 1M assignments)")
	}
}

// registerEtcd adds the flags of an etcd connection (serve, import, and
// either side of store copy).
func (o *storeOptions) registerEtcd(f *pflag.FlagSet) {
	f.StringVar(&o.etcd.CertFile, "etcd-cert-file", "", "with an etcd store: TLS client certificate (needs etcds://)")
	f.StringVar(&o.etcd.KeyFile, "etcd-key-file", "", "with an etcd store: TLS client key (needs etcds://)")
	f.StringVar(&o.etcd.CAFile, "etcd-ca-file", "", "with an etcd store: CA of the etcd servers' certificates (needs etcds://)")
	f.StringVar(&o.etcd.Username, "etcd-username", "", "with an etcd store: user name (etcd authentication)")
	f.StringVar(&o.etcd.Password, "etcd-password", "", "with an etcd store: password")
	f.StringVar(&o.pwFile, "etcd-password-file", "", "with an etcd store: file holding the password")
	f.DurationVar(&o.etcd.RequestTimeout, "etcd-timeout", 5*time.Second, "with an etcd store: how long one etcd request (a commit) may take")
	f.IntVar(&o.etcd.MaxTxnOps, "etcd-max-txn-ops", etcd.DefaultMaxTxnOps, "with an etcd store: the cluster's --max-txn-ops; every commit is planned to fit it (an import commits as many lines at a time as fit)")
	f.IntVar(&o.etcd.MaxRequestBytes, "etcd-max-request-bytes", etcd.DefaultMaxRequestBytes, "with an etcd store: the cluster's --max-request-bytes; every commit is planned to fit it")
}

// target is the store the options name: its kind, "bolt" or "etcd", and where
// it is, the file or the URL.
// With flags, a fleet's flag given with a bbolt store is refused
// (fleetOnly): serve refuses it before it starts, and config validate
// reports it (serveValueProblems).
func (o storeOptions) target(f *pflag.FlagSet) (kind, where string, err error) {
	kind, where, err = o.kind(f)
	if err == nil && kind == "bolt" {
		err = fleetOnly(f, where)
	}
	if err != nil {
		return "", "", err
	}
	return kind, where, nil
}

// kind is target without the fleet flags' check.
func (o storeOptions) kind(f *pflag.FlagSet) (kind, where string, err error) {
	if o.url == "" {
		if o.db == "" {
			return "", "", errors.New(`--db "": name the file (./permatrix.db)`)
		}
		return "bolt", o.db, nil
	}
	if f != nil && f.Changed("db") {
		// Given both, the one given higher up wins, as for every flag (the
		// command line, then the environment, then the file): the image's
		// PERMATRIX_DB yields to --store on the command line,
		// PERMATRIX_STORE to --db, and either to the other in the file.
		db, st := givenAt(f.Lookup("db")), givenAt(f.Lookup("store"))
		switch {
		case db < st:
		case st < db:
			return storeOptions{db: o.db}.kind(nil)
		default:
			return "", "", errors.New("give one of --store and --db")
		}
	}
	switch {
	case strings.HasPrefix(o.url, "bolt:"):
		path := strings.TrimPrefix(o.url, "bolt:")
		if path == "" {
			return "", "", fmt.Errorf("--store %q: name the file (bolt:./permatrix.db)", o.url)
		}
		return "bolt", path, nil
	case strings.HasPrefix(o.url, "etcd://"), strings.HasPrefix(o.url, "etcds://"):
		if _, _, _, err := etcd.ParseURL(o.url); err != nil {
			return "", "", err
		}
		return "etcd", o.url, nil
	}
	return "", "", fmt.Errorf("--store %q: want bolt:PATH or etcd://HOST:PORT[,…]/PREFIX", redact.URL(o.url))
}

// fleetFlags are the flags that mean something with an etcd store only.
var fleetFlags = []string{"replica", "max-staleness", "etcd-cert-file", "etcd-key-file", "etcd-ca-file",
	"etcd-username", "etcd-password", "etcd-password-file", "etcd-timeout", "etcd-max-txn-ops", "etcd-max-request-bytes"}

// fleetOnly refuses a fleet's flag given (on the command line, in the
// environment or the file) with a bbolt store: it would be silently unused
// — a --max-staleness that never turns the sidecar not ready, a
// --replica and credentials for a cluster nobody talks to — where the
// operator meant a fleet and got one pod's file.
func fleetOnly(f *pflag.FlagSet, file string) error {
	if f == nil {
		return nil
	}
	for _, name := range fleetFlags {
		if fl := f.Lookup(name); fl != nil && fl.Changed {
			return fmt.Errorf("--%s is for an etcd store (--store etcd://…), and this store is the bbolt file %s", name, file)
		}
	}
	return nil
}

// open opens the store the options name.
func (o storeOptions) open(ctx context.Context, f *pflag.FlagSet, log *slog.Logger) (store.Backend, string, error) {
	kind, where, err := o.target(f)
	if err != nil {
		return nil, "", err
	}
	if kind == "bolt" {
		open := func(path string) (*bolt.DB, error) {
			return bolt.Open(path, bolt.Options{Resident: o.residentPrefix()})
		}
		if o.readOnly {
			open = openReading
		}
		db, err := open(where)
		if err != nil {
			return nil, "bolt:" + where, err
		}
		if o.probe > 0 {
			db.SetProbeInterval(o.probe)
		}
		return db, "bolt:" + where, nil
	}
	eo := o.etcd
	eo.URL, eo.Replica, eo.Logger = where, o.replica, log
	eo.Resident = o.residentPrefix()
	if o.pwFile != "" && eo.Password != "" {
		which, err := preferred(f, "etcd-password", "etcd-password-file")
		if err != nil {
			return nil, "", err
		}
		if which == "etcd-password" {
			o.pwFile = ""
		}
	}
	if o.pwFile != "" {
		b, err := os.ReadFile(o.pwFile)
		if err != nil {
			return nil, "", err
		}
		eo.Password = strings.TrimSpace(string(b))
	}
	// The etcd client speaks plain text to http endpoints whatever TLS
	// files it is given: certificates with etcd:// would be silently unused.
	if strings.HasPrefix(where, "etcd://") && (eo.CertFile != "" || eo.KeyFile != "" || eo.CAFile != "") {
		return nil, "", fmt.Errorf("--store %s: the --etcd-*-file TLS options need an etcds:// URL (etcd:// is plain text)", where)
	}
	if strings.HasPrefix(where, "etcd://") && eo.Password != "" {
		log.Warn("the etcd password goes to etcd in plain text: use etcds:// (TLS)", "store", where)
	}
	if eo.Replica == "" {
		return nil, "", errors.New("an etcd store needs --replica: the local bbolt file decisions read")
	}
	s, err := etcd.Open(ctx, eo)
	if err != nil {
		return nil, where, err
	}
	return s, where, nil
}

// residentPrefix is the key prefix whose pages the store keeps resident
// (bolt.Options.Resident): the document decisions read with
// --store-resident, else nil.
func (o storeOptions) residentPrefix() []byte {
	if !o.resident {
		return nil
	}
	return store.DocumentPrefix()
}

// openReading opens a bbolt store a command only reads (check --db,
// replay --db, store copy's source): read-only, so that nothing is written
// to it and it may be on a read-only file system — unless it is of format
// 1, which opening it for writing migrates first, as serve would.
func openReading(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	var nw *bolt.NeedsWriteError
	if errors.As(err, &nw) {
		return bolt.Open(path, bolt.Options{})
	}
	return db, err
}

// damaged turns a damaged store file into the exit code that says so
// (docs/security.md), logging what is wrong.
func damaged(err error, log *slog.Logger, where string) error {
	var ce *bolt.CorruptError
	if errors.As(err, &ce) {
		// A distinct exit code: restarting will not help; the file needs a
		// restore.
		attrs := []any{"store", where, "problems", ce.Problems, "err", ce.Error()}
		if !strings.HasPrefix(where, "bolt:") {
			// A replica holds nothing etcd does not: no restore needed.
			attrs = append(attrs, "hint", "this is the sidecar's local replica of the etcd store: delete it and start again, and it is rebuilt from etcd")
		}
		log.Error("the store file is damaged; not serving", attrs...)
		return exitError{exitStoreDamaged}
	}
	return err
}

// givenAt ranks where a given flag's value came from: 3 the command line,
// 2 the environment (PERMATRIX_*), 1 the configuration file.
func givenAt(f *pflag.Flag) int {
	switch {
	case fromEnv(f):
		return 2
	case f.Annotations[config.Annotation] != nil:
		return 1
	}
	return 3
}

// preferred says which of two flags naming one thing (a secret and the
// file holding it), both given, to use: the one given higher up (command
// line, environment, file), as for every flag. Both at one level is an
// error.
func preferred(f *pflag.FlagSet, a, b string) (string, error) {
	if f != nil {
		switch ra, rb := givenAt(f.Lookup(a)), givenAt(f.Lookup(b)); {
		case ra > rb:
			return a, nil
		case rb > ra:
			return b, nil
		}
	}
	return "", fmt.Errorf("give one of --%s and --%s", a, b)
}
