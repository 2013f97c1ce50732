package extauthz_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
)

// TestShutdownSaysItCutChecks: Shutdown returns nil when every call
// finished, and its context's error when it had to cut a check in flight
// (serve then exits non-zero).
func TestShutdownSaysItCutChecks(t *testing.T) {
	deciding := make(chan struct{})
	release := make(chan struct{})
	srv := extauthz.New(extauthz.Config{
		Gateway: &gateway.Gateway{Identity: identity.Default()},
		Decide: func(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
			close(deciding)
			<-release
			return &permatrix.Decision{}, nil
		},
		ErrorJSON: permhttp.ErrorJSON,
	})
	defer close(release)
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	c := client(t, addr.String(), insecure.NewCredentials())
	called := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background(), request("GET", "/", map[string]string{"x-forwarded-user": "ann"},
			map[string]string{"system": tm, "action": "edit_users"}))
		called <- err
	}()
	<-deciding
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown that cut a check: %v", err)
	}
	if err := <-called; err == nil {
		t.Fatal("the check cut by the shutdown got an answer")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	idle := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, ErrorJSON: permhttp.ErrorJSON})
	if _, err := idle.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() { served <- idle.Serve() }()
	if err := idle.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown with nothing in flight: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
