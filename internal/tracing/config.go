package tracing

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/gobwas/glob"
)

// OPA's defaults (internal/distributedtracing of OPA v1.22), kept as OPA
// has them so that a section copied from `opa run --config-file` means
// the same here.
const (
	defaultGRPCAddress  = "localhost:4317"
	defaultHTTPAddress  = "localhost:4318"
	defaultServiceName  = "opa"
	defaultSamplePct    = float64(100)
	defaultEncryption   = "off"
	defaultBatchTimeout = 5000
	defaultExportTimout = 30000
	defaultMaxBatch     = 512
	defaultMaxQueue     = 2048
)

// Config is OPA's distributed_tracing section, with OPA's keys.
type Config struct {
	Type               string   `json:"type,omitempty"`
	Address            string   `json:"address,omitempty"`
	ServiceName        string   `json:"service_name,omitempty"`
	SamplePercentage   *float64 `json:"sample_percentage,omitempty"`
	Encryption         string   `json:"encryption,omitempty"`
	AllowInsecureTLS   *bool    `json:"allow_insecure_tls,omitempty"`
	TLSCertFile        string   `json:"tls_cert_file,omitempty"`
	TLSPrivateKeyFile  string   `json:"tls_private_key_file,omitempty"`
	TLSCACertFile      string   `json:"tls_ca_cert_file,omitempty"`
	ExcludePaths       []string `json:"exclude_paths,omitempty"`
	Resource           Resource `json:"resource"`
	BatchSpanProcessor Batching `json:"batch_span_processor_options"`
	excludePaths       []*glob.Pattern
}

// Resource is OPA's distributed_tracing.resource: attributes of every
// span's resource.
type Resource struct {
	ServiceVersion        string `json:"service_version,omitempty"`
	ServiceInstanceID     string `json:"service_instance_id,omitempty"`
	ServiceNamespace      string `json:"service_namespace,omitempty"`
	DeploymentEnvironment string `json:"deployment_environment,omitempty"`
}

// Batching is OPA's distributed_tracing.batch_span_processor_options.
type Batching struct {
	Blocking           *bool `json:"blocking,omitempty"`
	BatchTimeoutMs     *int  `json:"batch_timeout_ms,omitempty"`
	ExportTimeoutMs    *int  `json:"export_timeout_ms,omitempty"`
	MaxExportBatchSize *int  `json:"max_export_batch_size,omitempty"`
	MaxQueueSize       *int  `json:"max_queue_size,omitempty"`
}

// ParseConfig reads the distributed_tracing section (JSON) as OPA reads
// it: its defaults and its messages. nil is the section absent: tracing
// off. Unknown keys are the configuration file's check (OPA's spec of
// the section).
func ParseConfig(raw []byte) (*Config, error) {
	c := &Config{}
	if raw != nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, c); err != nil {
			return nil, fmt.Errorf("distributed_tracing: %w", err)
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Enabled reports whether spans are made and exported: OPA traces only
// with a type (grpc or http); without one the section is inert.
func (c *Config) Enabled() bool { return c != nil && (c.Type == "grpc" || c.Type == "http") }

// validate is OPA's validateAndInjectDefaults, with its messages, and
// OPA's checks of the TLS keys that need no file read (OPA makes them at
// start, here `config validate` makes them too).
func (c *Config) validate() error {
	switch c.Type {
	case "", "grpc", "http":
	default:
		return fmt.Errorf("unknown distributed_tracing.type '%s', must be \"grpc\", \"http\" or \"\" (unset)", c.Type)
	}
	if c.Address == "" {
		switch c.Type {
		case "grpc":
			c.Address = defaultGRPCAddress
		case "http":
			c.Address = defaultHTTPAddress
		}
	}
	if c.ServiceName == "" {
		c.ServiceName = defaultServiceName
	}
	if c.SamplePercentage == nil {
		c.SamplePercentage = ptr(defaultSamplePct)
	}
	if c.Encryption == "" {
		c.Encryption = defaultEncryption
	}
	if c.AllowInsecureTLS == nil {
		c.AllowInsecureTLS = ptr(false)
	}
	b := &c.BatchSpanProcessor
	if b.Blocking == nil {
		b.Blocking = ptr(false)
	}
	if b.BatchTimeoutMs == nil {
		b.BatchTimeoutMs = ptr(defaultBatchTimeout)
	}
	if b.ExportTimeoutMs == nil {
		b.ExportTimeoutMs = ptr(defaultExportTimout)
	}
	if b.MaxExportBatchSize == nil {
		b.MaxExportBatchSize = ptr(defaultMaxBatch)
	}
	if b.MaxQueueSize == nil {
		b.MaxQueueSize = ptr(defaultMaxQueue)
	}
	switch c.Encryption {
	case "off", "tls", "mtls":
	default:
		return fmt.Errorf("unsupported distributed_tracing.encryption_scheme '%s'", c.Encryption)
	}
	if p := *c.SamplePercentage; p < 0 || p > 100 {
		return fmt.Errorf("unsupported distributed_tracing.sample_percentage '%v'", p)
	}
	for _, p := range c.ExcludePaths {
		// '/' separates: '*' stays in one segment, '**' spans them (OPA's).
		g, err := glob.Compile(p, '/')
		if err != nil {
			return fmt.Errorf("invalid distributed_tracing.exclude_paths pattern '%s': %w", p, err)
		}
		c.excludePaths = append(c.excludePaths, g)
	}
	// OPA's tlsutil messages.
	if (c.TLSCertFile == "") != (c.TLSPrivateKeyFile == "") {
		return errors.New("tls_cert_file and tls_private_key_file must be specified together")
	}
	if c.Encryption == "mtls" && c.TLSCertFile == "" {
		return errors.New("tls_cert_file required but not supplied")
	}
	// Past OPA, which reads these files and then uses none of them: with
	// encryption off the spans go in plain text, a CA or a client
	// certificate given or not; with tls the certificate is never sent.
	if c.Enabled() {
		for _, k := range []struct {
			name  string
			given bool
			used  bool
		}{
			{"tls_ca_cert_file", c.TLSCACertFile != "", c.Encryption != "off"},
			{"allow_insecure_tls", *c.AllowInsecureTLS, c.Encryption != "off"},
			{"tls_cert_file", c.TLSCertFile != "", c.Encryption == "mtls"},
		} {
			if k.given && !k.used {
				return fmt.Errorf("distributed_tracing.%s: ignored with encryption %q (spans would go %s): set encryption to %s, or leave the key out",
					k.name, c.Encryption, map[bool]string{true: "in plain text", false: "without the client certificate"}[c.Encryption == "off"],
					map[bool]string{true: "tls or mtls", false: "mtls"}[k.name != "tls_cert_file"])
			}
		}
	}
	// Past OPA: the SDK's own batching would refuse or misread these.
	// blocking makes a decision wait for the exporter, which a tracing
	// backend that is down must never do to a decision.
	if *b.Blocking {
		return errors.New("distributed_tracing.batch_span_processor_options.blocking: true is not supported by permatrix: a tracing backend that is down would hold up decisions (spans are dropped, and counted, when the queue is full)")
	}
	for _, o := range []struct {
		name string
		v    int
	}{{"batch_timeout_ms", *b.BatchTimeoutMs}, {"export_timeout_ms", *b.ExportTimeoutMs},
		{"max_export_batch_size", *b.MaxExportBatchSize}, {"max_queue_size", *b.MaxQueueSize}} {
		if o.v < 1 {
			return fmt.Errorf("distributed_tracing.batch_span_processor_options.%s: want 1 or more, not %d", o.name, o.v)
		}
	}
	for _, o := range []struct {
		name string
		v    int
	}{{"batch_timeout_ms", *b.BatchTimeoutMs}, {"export_timeout_ms", *b.ExportTimeoutMs}} {
		if o.v > maxTimeoutMs {
			return fmt.Errorf("distributed_tracing.batch_span_processor_options.%s: at most %d (an hour), not %d", o.name, maxTimeoutMs, o.v)
		}
	}
	if *b.MaxQueueSize > maxQueueLimit {
		return fmt.Errorf("distributed_tracing.batch_span_processor_options.max_queue_size: at most %d spans, not %d", maxQueueLimit, *b.MaxQueueSize)
	}
	if *b.MaxExportBatchSize > *b.MaxQueueSize {
		return fmt.Errorf("distributed_tracing.batch_span_processor_options.max_export_batch_size %d is larger than max_queue_size %d", *b.MaxExportBatchSize, *b.MaxQueueSize)
	}
	return nil
}

// maxTimeoutMs bounds batch_timeout_ms and export_timeout_ms: made
// durations, larger numbers overflow (a batch timer of a negative time
// fires without end, an export's deadline is past before it starts), and
// an export given longer holds the queue's one exporter that long on a
// backend that never answers.
const maxTimeoutMs = 3_600_000

// maxQueueLimit bounds the queue of spans a configuration may ask for: a
// span held is some hundreds of bytes, so memory stays bounded whatever
// the file says.
const maxQueueLimit = 1 << 20

// tlsConfig is OPA's: nil with encryption off; the CA file's and the
// client certificate's problems are start's errors, in OPA's words.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.Encryption == "off" {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: *c.AllowInsecureTLS} //nolint:gosec // OPA's allow_insecure_tls, the operator's choice
	if c.TLSCACertFile != "" {
		pem, err := os.ReadFile(c.TLSCACertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA cert file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("failed to parse CA cert %q", c.TLSCACertFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSPrivateKeyFile)
		if err != nil {
			return nil, err
		}
		if c.Encryption == "mtls" {
			cfg.Certificates = []tls.Certificate{cert}
		}
	}
	return cfg, nil
}

func ptr[T any](v T) *T { return &v }
