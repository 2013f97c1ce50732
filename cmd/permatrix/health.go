package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/client"
)

type healthOptions struct {
	url, addr, diagnosticAddr string
	timeout                   time.Duration
}

func newHealth() *cobra.Command {
	o := healthOptions{}
	cmd := &cobra.Command{
		Use:   "health [--url URL]",
		Short: "Exit 0 when a running server is ready (a HEALTHCHECK or exec probe)",
		Long: `Ask a running permatrix's /health/ready and exit 0 when it is ready (the
bundle loaded, the store open and taking writes), 1 when it is not or does not
answer within --timeout; the reason goes to stderr. Made for a distroless
image's HEALTHCHECK and a Kubernetes exec probe: no shell or curl needed.

The server is --url if given; else --diagnostic-addr if set (the plain-HTTP
diagnostic listener: the one to ask when the API is served over TLS); else
--addr. --addr and --diagnostic-addr are serve's own flags, so the
PERMATRIX_ADDR and PERMATRIX_DIAGNOSTIC_ADDR a container gives serve are read
here too; a wildcard host (0.0.0.0, ::) is asked on loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runHealth(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "base URL of the server: http(s)://host:port or unix:///path/to/permatrix.sock")
	f.StringVar(&o.addr, "addr", "127.0.0.1:8181", "serve's --addr: host:port or unix:///path (used without --url and --diagnostic-addr)")
	f.StringVar(&o.diagnosticAddr, "diagnostic-addr", "", "serve's --diagnostic-addr: asked instead of --addr when set")
	f.DurationVar(&o.timeout, "timeout", 2*time.Second, "give up (not ready) after this long")
	return cmd
}

func runHealth(cmd *cobra.Command, o healthOptions) error {
	base, err := o.target()
	if err != nil {
		return err
	}
	c, err := client.New(base, client.WithHTTPClient(&http.Client{Timeout: o.timeout}))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	if _, err := c.Ready(ctx); err != nil {
		msg := err.Error()
		var e *client.Error
		if errors.As(err, &e) {
			msg = e.Message
			if strings.Contains(msg, "HTTP request to an HTTPS server") {
				msg += " (the API is served over TLS: ask --diagnostic-addr, or give an https --url)"
			}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "permatrix health: %s/health/ready: %s\n", base, msg)
		return exitError{code: 1}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "ready: %s/health/ready\n", base)
	return nil
}

// target is the base URL to ask: --url (a trailing /health/ready is the
// same server), else the diagnostic address, else the API's.
func (o healthOptions) target() (string, error) {
	if o.url != "" {
		u := strings.TrimSuffix(strings.TrimSuffix(o.url, "/"), "/health/ready")
		if !strings.Contains(u, "://") {
			return "", fmt.Errorf("--url %q: want http(s)://host:port or unix:///path", o.url)
		}
		return u, nil
	}
	addr := o.addr
	if o.diagnosticAddr != "" {
		addr = o.diagnosticAddr
	}
	if strings.HasPrefix(addr, "unix://") {
		return addr, nil
	}
	if strings.HasPrefix(addr, "systemd:") {
		// The socket's address is the socket unit's, which serve was
		// never told: nothing here knows where to ask.
		return "", fmt.Errorf("address %q is a socket passed by socket activation: its address is the socket unit's (ListenStream=); give it with --url, or --diagnostic-addr host:port", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: want host:port or unix:///path: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
