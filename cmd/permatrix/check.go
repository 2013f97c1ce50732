package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

type checkOptions struct {
	server, db, bundle string
	resourceType       string
	resourceID         string
	context            string
	groups             []string
	check              permatrix.Check
}

func newCheck() *cobra.Command {
	o := checkOptions{}
	cmd := &cobra.Command{
		Use:   "check --subject USER --system SYSTEM --action ACTION [--resource-type T --resource-id ID]",
		Short: "Decide one check, against a db file or a running server",
		Long: `Decide one check and print the decision as JSON. Exit status: 0 allowed,
1 denied, 2 error. With --server it asks a running permatrix; otherwise it opens
the --db file itself (which must exist, and fails while a server holds it)
with --bundle.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.check.Subject, "subject", "", "user id")
	f.StringVar(&o.check.System, "system", "", "system id")
	f.StringVar(&o.check.Action, "action", "", "action id")
	f.StringVar(&o.resourceType, "resource-type", "", "resource (scope) type; none means service scope")
	f.StringVar(&o.resourceID, "resource-id", "", "resource id")
	f.StringVar(&o.context, "context", "", "context as a JSON object")
	f.StringSliceVar(&o.groups, "group", nil, "asserted group (repeatable)")
	f.Uint64Var(&o.check.MinRevision, "min-revision", 0, "decide at this store revision or later (a consistency token: the revision a write returned)")
	f.StringVar(&o.server, "server", "", "URL of a running permatrix (e.g. http://127.0.0.1:8181, or unix:///path/to/permatrix.sock)")
	f.StringVar(&o.db, "db", "./permatrix.db", "bbolt file of the assignment store")
	f.StringVar(&o.bundle, "bundle", "", "policy bundle (default: the embedded one)")
	return cmd
}

func runCheck(cmd *cobra.Command, o checkOptions) error {
	ch := o.check
	ch.Groups = o.groups
	if o.resourceID != "" && o.resourceType == "" {
		return errors.New("--resource-id needs --resource-type (without both, the check is at service scope)")
	}
	if o.resourceType != "" {
		ch.Resource = &permatrix.Scope{Type: o.resourceType, ID: o.resourceID}
	}
	if o.context != "" {
		if err := json.Unmarshal([]byte(o.context), &ch.Context); err != nil {
			return fmt.Errorf("--context: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	var d *permatrix.Decision
	var err error
	if o.server != "" {
		d, err = checkRemote(ctx, o.server, ch)
	} else {
		d, err = checkLocal(ctx, o.db, o.bundle, ch)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	if !d.Allow {
		return exitError{code: 1}
	}
	return nil
}

func checkLocal(ctx context.Context, dbPath, bundlePath string, ch permatrix.Check) (*permatrix.Decision, error) {
	// Opening a bolt file creates it: a mistyped --db would be decided
	// against a new, empty store (every answer a deny).
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("--db %s: %w", dbPath, err)
	}
	db, err := openReading(dbPath)
	var locked *bolt.LockedError
	if errors.As(err, &locked) {
		return nil, fmt.Errorf("%w: to ask the server that holds it, use --server", err)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	b, err := opa.ReadBundle(ctx, bundlePath, opa.ReadOptions{})
	if err != nil {
		return nil, err
	}
	svc := pdp.New(db, opa.NewEngine(db), nil, nil)
	if _, err := svc.Activate(ctx, b); err != nil {
		return nil, err
	}
	d, err := svc.Check(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("%s", permatrix.ErrorMessage(err))
	}
	return d, nil
}

// checkRemote asks a running server through the Go client.
func checkRemote(ctx context.Context, server string, ch permatrix.Check) (*permatrix.Decision, error) {
	c, err := client.New(server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	d, err := c.Check(ctx, ch)
	var e *client.Error
	if errors.As(err, &e) {
		return nil, fmt.Errorf("%s answered %d %s: %s", server, e.StatusCode, e.Code, e.Message)
	}
	return d, err
}
