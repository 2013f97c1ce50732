package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

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
