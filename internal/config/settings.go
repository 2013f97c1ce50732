package config

import (
	"slices"
	"strings"
)

// Settings map the keys of permatrix's sections to serve's flags: a key
// sets its flag, with the flag's type, default and checks. The server
// section holds every serve flag that is neither the store's, the
// identity's nor the routes file.
var Settings = []struct{ Key, Flag string }{
	{"server.addr", "addr"},
	{"server.grpc_addr", "grpc-addr"},
	{"server.diagnostic_addr", "diagnostic-addr"},
	{"server.tls.cert_file", "tls-cert-file"},
	{"server.tls.key_file", "tls-key-file"},
	{"server.tls.client_ca_file", "tls-client-ca-file"},
	{"server.allowed_hosts", "allowed-hosts"},
	{"server.max_connections", "max-connections"},
	{"server.max_connections_per_client", "max-connections-per-client"},
	{"server.max_requests_in_flight", "max-requests-in-flight"},
	{"server.admin_token", "admin-token"},
	{"server.admin_token_file", "admin-token-file"},
	{"server.body_limit", "body-limit"},
	{"server.consistency_timeout", "consistency-timeout"},
	{"server.evaluator", "evaluator"},
	{"server.shutdown_timeout", "shutdown-timeout"},
	{"server.log_level", "log-level"},
	{"server.bundle", "bundle"},
	{"server.watch", "watch"},
	{"server.watch_debounce", "watch-debounce"},
	{"server.verification.key", "verification-key"},
	{"server.verification.key_id", "verification-key-id"},
	{"server.verification.algorithm", "verification-alg"},
	{"server.verification.scope", "verification-scope"},
	{"server.decision_log", "decision-log"},
	{"server.decision_log_mask", "decision-log-mask"},

	{"store.url", "store"},
	{"store.db", "db"},
	{"store.replica", "replica"},
	{"store.max_staleness", "max-staleness"},
	{"store.probe_interval", "store-probe-interval"},
	{"store.resident", "store-resident"},
	{"store.etcd.cert_file", "etcd-cert-file"},
	{"store.etcd.key_file", "etcd-key-file"},
	{"store.etcd.ca_file", "etcd-ca-file"},
	{"store.etcd.username", "etcd-username"},
	{"store.etcd.password", "etcd-password"},
	{"store.etcd.password_file", "etcd-password-file"},
	{"store.etcd.timeout", "etcd-timeout"},
	{"store.etcd.max_txn_ops", "etcd-max-txn-ops"},
	{"store.etcd.max_request_bytes", "etcd-max-request-bytes"},

	{"identity.mode", "identity"},
	{"identity.groups_header", "identity-groups-header"},
	{"identity.allow_subject_header", "allow-subject-header"},
	{"identity.jwt.jwks", "jwt-jwks"},
	{"identity.jwt.issuer", "jwt-issuer"},
	{"identity.jwt.audience", "jwt-audience"},
	{"identity.jwt.clock_skew", "jwt-clock-skew"},
	{"identity.jwt.subject_claim", "jwt-subject-claim"},
	{"identity.jwt.groups_claim", "jwt-groups-claim"},
	{"identity.jwt.algorithms", "jwt-algorithms"},

	{"routes", "routes"},
	// OPA's default_decision (POST /) is the flag of that name.
	{"default_decision", "default-decision"},
}

// listFlags take a YAML list (joined with commas).
var listFlags = map[string]bool{"decision-log-mask": true, "jwt-algorithms": true, "allowed-hosts": true}

func flagOf(key string) string {
	for _, s := range Settings {
		if s.Key == key {
			return s.Flag
		}
	}
	return ""
}

// hasChildren reports whether key is a mapping of settings (server.tls).
func hasChildren(key string) bool {
	return slices.ContainsFunc(Settings, func(s struct{ Key, Flag string }) bool {
		return strings.HasPrefix(s.Key, key+".")
	})
}

// childrenOf are the keys directly under path, for messages.
func childrenOf(path string) []string {
	var out []string
	for _, s := range Settings {
		if rest, ok := strings.CutPrefix(s.Key, path+"."); ok {
			name, _, _ := strings.Cut(rest, ".")
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}
