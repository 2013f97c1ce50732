package tracing

import (
	"strings"
	"testing"
)

// The section reads as OPA reads it: its defaults, and its messages for
// the values it refuses.
func TestParseConfigAsOPA(t *testing.T) {
	c, err := ParseConfig([]byte(`{"type":"grpc"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled() || c.Address != "localhost:4317" || c.ServiceName != "opa" || *c.SamplePercentage != 100 ||
		c.Encryption != "off" || *c.AllowInsecureTLS || *c.BatchSpanProcessor.MaxQueueSize != 2048 ||
		*c.BatchSpanProcessor.MaxExportBatchSize != 512 || *c.BatchSpanProcessor.BatchTimeoutMs != 5000 {
		t.Fatalf("defaults: %+v", c)
	}
	if c, err = ParseConfig([]byte(`{"type":"http"}`)); err != nil || c.Address != "localhost:4318" {
		t.Fatalf("http: %+v %v", c, err)
	}
	for _, raw := range []string{"", "null", `{}`, `{"address":"collector:4317"}`} {
		var b []byte
		if raw != "" {
			b = []byte(raw)
		}
		if c, err := ParseConfig(b); err != nil || c.Enabled() {
			t.Fatalf("%q: without a type, tracing is off (OPA's): %+v %v", raw, c, err)
		}
	}
	for raw, want := range map[string]string{
		`{"type":"zipkin"}`:                                                            `unknown distributed_tracing.type 'zipkin', must be "grpc", "http" or "" (unset)`,
		`{"type":"GRPC"}`:                                                              `unknown distributed_tracing.type 'GRPC'`,
		`{"type":"grpc","encryption":"ssl"}`:                                           `unsupported distributed_tracing.encryption_scheme 'ssl'`,
		`{"type":"grpc","sample_percentage":101}`:                                      `unsupported distributed_tracing.sample_percentage '101'`,
		`{"type":"grpc","sample_percentage":-1}`:                                       `unsupported distributed_tracing.sample_percentage '-1'`,
		`{"type":"grpc","sample_percentage":"all"}`:                                    `distributed_tracing: json: cannot unmarshal string`,
		`{"type":"grpc","exclude_paths":["/health["]}`:                                 `invalid distributed_tracing.exclude_paths pattern '/health['`,
		`{"type":"grpc","tls_cert_file":"c.pem"}`:                                      `tls_cert_file and tls_private_key_file must be specified together`,
		`{"type":"grpc","encryption":"mtls"}`:                                          `tls_cert_file required but not supplied`,
		`{"type":"grpc","batch_span_processor_options":{"blocking":true}}`:             `blocking: true is not supported by permatrix`,
		`{"type":"grpc","batch_span_processor_options":{"max_queue_size":0}}`:          `max_queue_size: want 1 or more, not 0`,
		`{"type":"grpc","batch_span_processor_options":{"max_queue_size":1000000000}}`: `max_queue_size: at most 1048576 spans`,
		`{"type":"grpc","batch_span_processor_options":{"max_queue_size":10}}`:         `max_export_batch_size 512 is larger than max_queue_size 10`,
		// TLS keys that would be ignored, spans sent in plain text or the
		// certificate unsent (OPA reads the files and uses none of them).
		`{"type":"grpc","tls_ca_cert_file":"ca.pem"}`:                                               `distributed_tracing.tls_ca_cert_file: ignored with encryption "off"`,
		`{"type":"grpc","allow_insecure_tls":true}`:                                                 `distributed_tracing.allow_insecure_tls: ignored with encryption "off"`,
		`{"type":"grpc","tls_cert_file":"c.pem","tls_private_key_file":"k.pem"}`:                    `distributed_tracing.tls_cert_file: ignored with encryption "off"`,
		`{"type":"grpc","encryption":"tls","tls_cert_file":"c.pem","tls_private_key_file":"k.pem"}`: `distributed_tracing.tls_cert_file: ignored with encryption "tls"`,
		// As durations, these overflowed (a timer of a negative time firing
		// without end, every export's deadline already past).
		`{"type":"grpc","batch_span_processor_options":{"batch_timeout_ms":9223372036854775807}}`: `batch_timeout_ms: at most 3600000 (an hour), not 9223372036854775807`,
		`{"type":"grpc","batch_span_processor_options":{"export_timeout_ms":10000000000000}}`:     `export_timeout_ms: at most 3600000 (an hour), not 10000000000000`,
		`{"type":"grpc","batch_span_processor_options":{"export_timeout_ms":3600001}}`:            `export_timeout_ms: at most 3600000 (an hour), not 3600001`,
	} {
		_, err := ParseConfig([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
}
