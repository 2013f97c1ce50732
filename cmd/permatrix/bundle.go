package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/opa"
)

func newBundle() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Build OPA bundles of the policies and data",
	}
	cmd.AddCommand(newBundleBuild())
	return cmd
}

type bundleBuildOptions struct {
	output, manifest, revision string
	sign                       opa.SignOptions
}

func newBundleBuild() *cobra.Command {
	o := bundleBuildOptions{}
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Write policies/ and systems/ of DIR (default .) as an OPA bundle (.tar.gz), optionally signed",
		Long: `Write the policies (tests left out) and catalogs under DIR/policies and DIR/systems
as a standard OPA bundle: a .tar.gz with a .manifest (roots "permatrix" and
"systems", rego_version 1, revision), data.json and the Rego files under their
paths. permatrix serve --bundle FILE and stock opa (opa eval -b FILE, opa run -b)
read it.

The manifest starts from DIR/bundles/manifest.json when that exists (or
--manifest): its metadata is kept, its roots must be the two above. The revision
is --revision, else the template's, else a digest of the content (the same tree
always gives the same revision).

With --signing-key the bundle carries a .signatures.json (a JWT over the
files' SHA-256 digests), as 'opa build --signing-key' writes it; verify with
serve --verification-key (or opa run --verification-key).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runBundleBuild(cmd, dir, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "bundle.tar.gz", "file to write")
	f.StringVar(&o.manifest, "manifest", "", "manifest template (default: DIR/bundles/manifest.json if it exists)")
	f.StringVarP(&o.revision, "revision", "r", "", "manifest revision (default: a digest of the content)")
	f.StringVar(&o.sign.Key, "signing-key", "", "sign with this HMAC secret or PEM private key (RSA, ECDSA), or the file holding it")
	f.StringVar(&o.sign.Algorithm, "signing-alg", "RS256", "signing algorithm (RS256, HS256, ES256, …)")
	f.StringVar(&o.sign.KeyID, "signing-key-id", opa.DefaultKeyID, "key id (kid) written into the signature")
	f.StringVar(&o.sign.ClaimsFile, "claims-file", "", "JSON file of extra claims for the signature (e.g. a scope)")
	return cmd
}

func runBundleBuild(cmd *cobra.Command, dir string, o bundleBuildOptions) error {
	if !opa.IsLayout(dir) {
		return fmt.Errorf("%s is not laid out like the repository: give a directory with policies/ (Rego) and systems/<id>/data.json (the catalogs)", dir)
	}
	b, err := opa.ReadLayout(os.DirFS(dir))
	if err != nil {
		return err
	}
	manifest := o.manifest
	if manifest == "" {
		if _, err := os.Stat(filepath.Join(dir, "bundles", "manifest.json")); err == nil {
			manifest = filepath.Join(dir, "bundles", "manifest.json")
		}
	}
	if manifest != "" {
		raw, err := os.ReadFile(manifest)
		if err != nil {
			return err
		}
		if err := opa.ApplyManifest(b, raw); err != nil {
			return fmt.Errorf("%s: %w", manifest, err)
		}
	}
	if o.revision != "" {
		b.SetRevision(o.revision)
	}
	// Compile before writing: a bundle the server would refuse is not built.
	if _, err := opa.Compile(cmd.Context(), b, nil); err != nil {
		return fmt.Errorf("the policies do not compile: %w", err)
	}
	var sign *opa.SignOptions
	if o.sign.Key != "" {
		sign = &o.sign
	} else if cmd.Flags().Changed("signing-alg") || cmd.Flags().Changed("signing-key-id") || o.sign.ClaimsFile != "" {
		return errors.New("--signing-alg, --signing-key-id and --claims-file need --signing-key")
	}
	var buf bytes.Buffer
	if err := opa.WriteBundle(&buf, b, sign); err != nil {
		return err
	}
	// Write to a temporary file and rename, so a reader (serve --watch on
	// the file) never sees half a bundle.
	tmp := o.output + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.output); err != nil {
		return err
	}
	signed := "unsigned"
	if sign != nil {
		signed = fmt.Sprintf("signed (%s, key id %q)", sign.Algorithm, sign.KeyID)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: revision %s, %d modules, %s\n", o.output, b.Revision(), b.Modules(), signed)
	return nil
}
