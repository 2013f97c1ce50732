// Package etcd is the assignment store's backend for a fleet: every sidecar
// writes to one etcd cluster and reads from a local bbolt replica that a
// watch keeps in step (store.Backend over etcd + internal/bolt).
//
// Invariants:
//
//   - Keys live under the prefix: "k/" + store key (the data), "g/" + unit
//     (one guard per unit: written with every commit that changes the unit,
//     so its ModRevision is the unit's last change), "m/idseq" (the
//     assignment number counter), "m/nudge", "m/copying" (the mark of
//     an incomplete store copy), and "m/fleet" (the fleet's marker, put by
//     ClaimPrefix: fleetmark.go refuses prefixes nested with another
//     fleet's).
//   - A commit is part of one etcd transaction: if the guard of every unit
//     the batch read has a ModRevision at or before the batch's base
//     revision, then the operations and the guards of the units they write;
//     else nothing (store.ErrConflict). Its revision is the transaction's
//     etcd revision. Concurrent commits that neither read nor write a unit
//     another one of them writes may share a transaction (commit.go): each
//     keeps its own guards, and all of them commit or none does.
//     Commit returns once the local replica has applied that revision, so a
//     decision made here after the acknowledgement sees the write.
//   - The replica applies the watch's events in revision order, every event
//     of one etcd revision in one bbolt transaction, and records the etcd
//     revision it has applied: a snapshot shows one etcd revision, never a
//     mix. Decisions read only the replica: they never wait on the network.
//     The watch carries the data and meta keys, not the guards; every
//     commit's revision reaches the replica (one that changed no data key
//     is followed by a put of a meta key, nudge), and so does every
//     revision that moved the id counter. A progress notification moves
//     the replica to its revision with no data change (etcd delivers every
//     event at or below it first): so do revisions other prefixes made.
//   - A replica records what it replicates: the prefix and the etcd
//     cluster's id (learnt on first contact, before the watch starts), not
//     the endpoint list. A replica of another cluster — or of its own
//     restored from a snapshot, which gets a new id — is emptied and
//     loaded afresh, never followed from its revision; so is a replica
//     ahead of its cluster's revision. Not only at a start: every answer
//     of a linearizable request (the heartbeat, a commit, a fresh read) is
//     held to the same test — another cluster id, or a revision below what
//     the replica had applied before it was sent (the cluster wiped or
//     restored from a snapshot while the sidecar runs) — and so is every
//     answer of the watch, to the cluster id, before its events are
//     applied; one that fails stops the reads and rebuilds the replica
//     (diverge). An answer to a request sent before the replica was
//     emptied for a rebuild is held to nothing: the rebuild read the
//     cluster afresh, and such an answer would only start another.
//   - A restart answers at once from the replica and watches from its
//     revision. If etcd has compacted past it, the replica is brought up to
//     one consistent read of the prefix (all pages at one revision), applied
//     as one bbolt transaction of the differences.
//   - A prefix marked by a store copy ("m/copying", copymark.go: put before
//     the copy changes anything, deleted after its last commit) holds part
//     of a store: the replica records the mark with every revision it
//     applies (the watch's events, a resync's read at its revision: bolt's
//     note), and no snapshot of a marked revision is served (View refuses
//     it, Health is not ready; nor does the decision cache answer:
//     Servable), and no commit is made while the prefix is marked (every
//     commit's transaction compares the mark's absence) — except to and by
//     the copy's own target (Options.CopyTarget), whose commits compare the
//     opposite: the mark present and the prefix's copy lock held by it.
//   - Every record is checked as the replica applies it (the watch's
//     events, a resync's pages) by store.CheckRecord, the rule of the bolt
//     open check's store.Verify, and so is the id counter ("m/idseq": a
//     number with room for a block of ids above it) as the watch applies
//     it, a resync reads it and a watch starts: while etcd holds a data key
//     permatrix does not write, or such a counter, the replica is not
//     served (View and Servable refuse, Health is not ready, naming the
//     key, never its value) until the key is repaired or deleted
//     (damage.go), and NextID reserves no id from such a counter. An
//     absent counter is put back above the ids the replica holds, the
//     counter's values the Store has read and its last value in etcd's
//     history, while not compacted (idFloor: probes at older revisions,
//     then a watch of the key from the last life they found, or from the
//     start when they find none and ids are held or were seen): a counter
//     deleted in etcd does not hand out again the ids handed out before. The
//     damage is published before the replica applies it, its repair after.
//     An apply's bookkeeping costs the keys it touches plus the log of the
//     damaged count (an ordered set, copied lazily), never a pass over
//     every damaged key: a writer planting one a revision is not quadratic.
//     A replica opened marked (its open check skips its records) has them
//     checked before the mark's removal is applied. The copy's own target
//     (Options.CopyTarget) is not refused: it reads what the prefix holds
//     to delete or replace it. A key the replica's bbolt cannot hold
//     (empty, or over bbolt.MaxKeySize) is such damage, and is not
//     applied: an apply bbolt refuses would stop the replica for good.
//   - If etcd is unreachable, reads keep answering from the replica; commits
//     fail with EUNAVAILABLE ("store unavailable") and apply nothing, or —
//     when the connection broke while a transaction was in flight — with
//     an EUNAVAILABLE error saying the outcome is unknown (all or nothing,
//     never a part; retrying is safe).
package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/redact"
	"github.com/permatrix/permatrix/internal/store"
)

// Options configure a connection.
type Options struct {
	// URL is etcd://host:port[,host:port…]/prefix (etcds:// for TLS).
	URL string
	// Replica is the local bbolt file of the applied state.
	Replica string
	// TLS client certificate and key, and the CA that signed the servers'.
	CertFile, KeyFile, CAFile string
	// Username and Password for etcd's authentication, if enabled.
	Username, Password string
	// DialTimeout bounds connecting; RequestTimeout bounds one request
	// (a commit, a page of a resync).
	DialTimeout, RequestTimeout time.Duration
	// MaxStaleness: past it without contact with etcd the store is not
	// ready (Health); zero: never.
	MaxStaleness time.Duration
	// MaxTxnOps and MaxRequestBytes are the cluster's --max-txn-ops and
	// --max-request-bytes (zero: etcd's defaults, DefaultMaxTxnOps and
	// DefaultMaxRequestBytes): commits are planned to fit them (Fits).
	MaxTxnOps, MaxRequestBytes int
	// CopyTarget opens the store as the target of a store copy: it is
	// read and written while the prefix holds a copy marker (MarkCopy),
	// which every other Store refuses to serve.
	CopyTarget bool
	// Resident is the replica's bolt.Options.Resident.
	Resident []byte
	Logger   *slog.Logger
}

// etcd's defaults of --max-txn-ops and --max-request-bytes.
const (
	DefaultMaxTxnOps       = 128
	DefaultMaxRequestBytes = 1536 * 1024
)

// idBlock is how many assignment numbers a sidecar reserves at once.
const idBlock = 1000

// resyncPage is how many keys one range request of a resync reads.
const resyncPage = 5000

// Store is a connection to the cluster with its replica.
type Store struct {
	// cli is the etcd client. It is nil until the follow loop has logged
	// in when etcd could not be reached at Open (connect): everything
	// else that talks to etcd runs after checked is closed, which follows
	// it, or in the follow loop itself.
	cli    *clientv3.Client
	cfg    clientv3.Config
	prefix string
	// endpoints is the --store URL's endpoint list as written (a replica
	// made before its cluster was recorded names it: sourceCluster).
	endpoints string
	// dataPrefix is prefix + "k/", the data keys'.
	dataPrefix []byte
	// The meta keys, made once (setPrefix): the mark's is compared with
	// every event applied and sent with every commit.
	idSeqKey, nudgeMetaKey, copyMarkKey string
	replica                             *bolt.DB
	opts                                Options
	log                                 *slog.Logger

	idMu          sync.Mutex
	idNext, idEnd uint64
	// idEpoch counts the copy mark's changes the watch applied, idsEpoch
	// is the count when the block idNext..idEnd was reserved: a store copy
	// into the prefix (its mark put, then removed) raises the counter past
	// the copied store's, and a block reserved before it — or during it —
	// would hand out numbers of the copied store's (a deleted assignment's
	// id coming back). Such a block is dropped (NextID).
	idEpoch  atomic.Uint64
	idsEpoch uint64
	// idSeen is the highest value of the id counter this sidecar has
	// read (the watch's events, a resync, a watch's start, its own
	// reservations): with the ids its replica holds, where a counter
	// found absent — deleted under the fleet — is put back from
	// (idFloor), so the ids handed out before do not come back.
	idSeen atomic.Uint64

	alive  context.Context // ends when Close is called
	cancel context.CancelFunc
	done   chan struct{}

	lastContact atomic.Int64  // unix nanos of the last answer from etcd
	latest      atomic.Uint64 // the newest etcd revision heard of
	// progressAsked is when Wait last asked the watch for a progress
	// notification (unix nanos): at most one request an interval, however
	// many checks wait.
	progressAsked atomic.Int64
	watching      atomic.Bool
	syncing       atomic.Bool // a new replica is being loaded: no reads
	// checked is closed once checkCluster has held the replica to the
	// cluster: until then the replica may be another cluster's, or ahead
	// of this one, and no commit is sent on a plan made from it (one made
	// before the check emptied the replica is of an earlier epoch:
	// planOnWiped).
	checked chan struct{}
	// cluster is the id of the cluster checkCluster held the replica to.
	cluster atomic.Uint64
	// diverged says why an answer from etcd showed a history the replica
	// did not follow (diverge): the follow loop rebuilds the replica.
	diverged atomic.Pointer[string]
	// rebuildMu orders the judging of an answer (sameHistory) and the
	// emptying of the replica for a rebuild (checkCluster): an answer is
	// judged in the epoch its request was sent in, or not at all.
	rebuildMu sync.Mutex
	// stopWatch ends the watch running now (diverge).
	stopWatch atomic.Pointer[context.CancelFunc]
	lastErr   atomic.Pointer[string]

	// copyLock is the prefix's copy lock, if this store (a copy's
	// target) holds it (LockCopy).
	copyLock atomic.Pointer[copyLock]
	// lockMu orders LockCopy and Close's release of the copy lock.
	lockMu sync.Mutex
	// markErr is the error of the replica's mark, made once
	// (errIncomplete).
	markErr atomic.Pointer[markError]
	// damage is the keys the replica applied that permatrix does not
	// write (damage.go): published before a snapshot can show them.
	damage atomic.Pointer[damage]
	// uncheckedHeld is set while the replica holds records no check of
	// this process has seen: it was opened marked (its open check skips
	// a marked replica's records), and has not been loaded or resynced
	// since. The mark's removal checks them (damage.go).
	uncheckedHeld atomic.Bool

	fresh      freshReads
	commits    chan *commitReq // to the committers (commit.go)
	committers sync.WaitGroup
	stopped    chan struct{} // closed by Close: queued commits give up
	closeOnce  sync.Once
	closeErr   error
}

// ParseURL splits etcd://h1:2379,h2:2379/prefix into endpoints and prefix.
// Its errors show the URL without the credentials it may hold: they go to
// the console and the logs.
func ParseURL(raw string) (endpoints []string, prefix string, secure bool, err error) {
	shown := redact.URL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats raw whole.
		return nil, "", false, fmt.Errorf("--store %q: not a URL", shown)
	}
	switch u.Scheme {
	case "etcd":
	case "etcds":
		secure = true
	default:
		return nil, "", false, fmt.Errorf("--store %q: want etcd://host:port[,host:port…]/prefix", shown)
	}
	// An "@" past the authority is the end of credentials too, whose
	// password holds "/", "?" or "#" typed unescaped (the authority, as
	// url.Parse reads it, ends inside it): taken as a prefix, the password
	// would be logged as the store's name, and its first part dialled as a
	// port.
	if u.User != nil || strings.Contains(raw, "@") {
		return nil, "", false, fmt.Errorf("--store %q: give credentials with --etcd-username/--etcd-password, not in the URL (an \"@\" in it ends credentials)", shown)
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, "", false, fmt.Errorf("--store %q: empty host", shown)
		}
		endpoints = append(endpoints, scheme+h)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, "", false, fmt.Errorf("--store %q: a query is not part of an etcd store URL (it would be dropped, the prefix ending at the \"?\"): write a \"?\" in the prefix as %%3F", shown)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, "", false, fmt.Errorf("--store %q: a fragment is not part of an etcd store URL (it would be dropped, the prefix ending at the \"#\"): write a \"#\" in the prefix as %%23", shown)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix == "" {
		return nil, "", false, fmt.Errorf("--store %q: name a key prefix (etcd://host:port/permatrix)", shown)
	}
	if err := checkPrefixName(prefix); err != nil {
		return nil, "", false, fmt.Errorf("--store %q: %w", shown, err)
	}
	return endpoints, "/" + prefix + "/", secure, nil
}

// checkPrefixName refuses a prefix name (decoded, without its outer
// slashes) that is not what it shows: etcd takes a prefix as bytes,
// neither cleaned nor split. A control character (%00, %0a) shows as
// nothing, or breaks a log line, and puts the prefix where it is not
// seen — /p/k/d%00x/ names keys that a fleet at /p/ holds as its own data
// keys ("k/d" NUL …), so neither fleet finds the other; bytes not UTF-8
// show as what they are not. An empty, "." or ".." segment reads as a
// path a shell would clean, which etcd does not: /p/../q/ is inside /p/,
// not /q/, and /p//q/ is not /p/q/. A segment is what the fleet checks
// nest by (ClaimPrefix); an escaped "/" (%2F) is a "/" all the same.
func checkPrefixName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("the prefix %q is not UTF-8: name it with printable characters", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("the prefix %q holds a control character (%q): a prefix that does not show what it is can hide inside another fleet's keys; name it with printable characters", name, string(r))
		}
		// A format character shows as nothing (a zero-width space, a byte
		// order mark) or turns the rest of a line around (a direction
		// override), a separator but the space as a space or a line
		// break: /p/k\u200b/ showed as /p/k/ in every message and log.
		if unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || unicode.Is(unicode.Zs, r) && r != ' ' {
			return fmt.Errorf("the prefix %q holds a character that does not show as itself (%q): two prefixes would read the same in the logs and the messages; name it with printable characters", name, string(r))
		}
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("the prefix %q holds an empty segment (\"//\"): etcd does not clean it away, /p//q/ is not /p/q/; write the prefix with one \"/\" between names", name)
		case ".", "..":
			return fmt.Errorf("the prefix %q holds a \".\" or \"..\" segment: etcd does not resolve it, /p/../q/ is a prefix inside /p/, not /q/; write the prefix it means", name)
		}
	}
	return nil
}

// PrefixesOverlap reports whether the stores at prefixes a and b, as
// ParseURL gives them ("/" + name + "/"), share keys: every key of a store
// is its prefix followed by "k/", "g/", "m/" or "c/", so a prefix that
// starts with the other ("/p/x/" and "/p/") names keys within the other's
// range — which the other's watch, its resync and a copy's clearing of it
// read as its own when the inner name starts with one of those ("/p/k/").
// The final "/" makes a prefix a whole name: "/px/" is beside "/p/".
func PrefixesOverlap(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// Prefix is the store's key prefix, as ParseURL gives it ("/name/").
func (s *Store) Prefix() string { return s.prefix }

// ClusterID is the id of the etcd cluster the store talks to, as etcd's
// answers carry it (the response header's ClusterId), whichever member and
// by whatever name it was reached: it waits, at most RequestTimeout, until
// a member has answered (checkCluster).
func (s *Store) ClusterID(ctx context.Context) (uint64, error) {
	if err := s.awaitCheck(ctx); err != nil {
		return 0, err
	}
	return s.cluster.Load(), nil
}

// Open connects to the cluster, opens (or creates) the replica, brings it up
// to date if it can, and starts the watch. The replica answers reads at
// once, even while etcd is unreachable.
func Open(ctx context.Context, o Options) (*Store, error) {
	endpoints, prefix, secure, err := ParseURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = DefaultMaxTxnOps
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxTxnOps < 0 || o.MaxRequestBytes < 0 {
		return nil, fmt.Errorf("--etcd-max-txn-ops and --etcd-max-request-bytes are the cluster's --max-txn-ops and --max-request-bytes: positive (0: etcd's defaults, %d and %d)",
			DefaultMaxTxnOps, DefaultMaxRequestBytes)
	}
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: o.DialTimeout, Username: o.Username, Password: o.Password,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second, Logger: nil,
		// The client's own limit on what it sends (2 MiB by default) must
		// not refuse what the cluster takes: etcd's gRPC server takes
		// --max-request-bytes plus the same allowance.
		MaxCallSendMsgSize: max(2<<20, o.MaxRequestBytes+grpcOverhead), DialOptions: testDialOptions}
	if secure || o.CertFile != "" || o.CAFile != "" {
		tc, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	replica, err := openReplica(o.Replica, prefix, strings.Join(endpoints, ","), o.Resident, o.Logger)
	if err != nil {
		return nil, err
	}
	// With credentials, clientv3.New logs in, so it fails while etcd is
	// unreachable. A replica that has a state answers from it anyway, as
	// without credentials: the follow loop logs in once etcd answers. A
	// login etcd refused (a wrong password), or nothing to answer from,
	// is an error now.
	cli, err := clientv3.New(cfg)
	if err != nil && (refusal(err) || replica.Revision() == 0) {
		replica.Close()
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "etcd %v: %v", endpoints, err)
	}
	if err != nil {
		o.Logger.Warn("etcd not reached; answering from the local replica, and connecting when etcd answers",
			"err", err, "applied_revision", replica.Revision())
	}
	wctx, cancel := context.WithCancel(context.Background())
	s := &Store{cli: cli, cfg: cfg, endpoints: strings.Join(endpoints, ","), replica: replica, opts: o, log: o.Logger, alive: wctx, cancel: cancel, done: make(chan struct{}),
		commits: make(chan *commitReq, queuedCommits), stopped: make(chan struct{}), checked: make(chan struct{})}
	s.setPrefix(prefix)
	s.fresh.read = s.newestCommit
	s.startCommitters(wctx)
	// A new replica holds nothing yet: no reads until the first
	// synchronisation is complete.
	s.syncing.Store(replica.Revision() == 0)
	s.uncheckedHeld.Store(replica.Note() != "") // bolt's open check skipped its records
	go s.follow(wctx)
	return s, nil
}

// testDialOptions, set by tests only, are added to the etcd client's
// (an interceptor counting the requests a store sends).
var testDialOptions []grpc.DialOption

// refusal reports whether err is etcd refusing a request (credentials,
// permissions, an invalid request), not failing to answer it. The client
// hands etcd's own errors over as rpctypes.EtcdError, whose gRPC code
// status.Code cannot see.
func refusal(err error) bool {
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// connect makes the etcd client when Open could not (etcd unreachable at
// start, with credentials): it tries again, backing off, until it has one
// or ctx ends.
func (s *Store) connect(ctx context.Context) bool {
	backoff := 100 * time.Millisecond
	for s.cli == nil {
		cli, err := clientv3.New(s.cfg)
		if ctx.Err() != nil {
			if cli != nil {
				cli.Close()
			}
			return false
		}
		if err == nil {
			s.cli = cli
			break
		}
		s.setErr(err)
		s.log.Warn("etcd not reached; retrying", "err", err, "applied_revision", s.replica.Revision())
		sleep(ctx, backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
	return true
}

// openReplica opens the local replica. A damaged one holds nothing etcd
// does not: it is set aside (path + ".damaged", for a look) and a new one
// is built from etcd — the replica is not fsynced on every apply, so an
// operating-system crash may leave it damaged (bolt.Options.Replica).
func openReplica(path, prefix, endpoints string, resident []byte, log *slog.Logger) (*bolt.DB, error) {
	o := bolt.Options{Replica: true, Source: replicaSource(prefix, 0), Resident: resident, AcceptSource: func(recorded string) bool {
		_, same := sourceCluster(recorded, prefix, endpoints)
		return same
	}}
	replica, err := bolt.Open(path, o)
	var ce *bolt.CorruptError
	if !errors.As(err, &ce) {
		return replica, err
	}
	log.Warn("the local replica is damaged; setting it aside and rebuilding it from etcd",
		"replica", path, "set_aside", path+".damaged", "problems", ce.Problems)
	if err := os.Rename(path, path+".damaged"); err != nil {
		return nil, fmt.Errorf("setting the damaged replica aside: %w", err)
	}
	return bolt.Open(path, o)
}

// replicaSource is what a replica records that it replicates: the key
// prefix and the etcd cluster, by its id, once a member has answered. The
// endpoints are only how the cluster is reached: a member added, the list
// reordered or a host renamed is the same cluster, and its replica is kept.
// Another cluster under the same prefix (or the same one restored from a
// snapshot, which gets a new id and may be behind the replica) is not: the
// replica is rebuilt from it (checkCluster).
func replicaSource(prefix string, cluster uint64) string {
	if cluster == 0 {
		return "etcd prefix " + prefix
	}
	return "etcd cluster " + strconv.FormatUint(cluster, 16) + " prefix " + prefix
}

// sourceCluster reads a replica's recorded source: whether it is a replica
// of prefix, and of which cluster (0: not known yet). A replica made before
// the cluster was recorded names the endpoint list as it was written, then
// the prefix: it is the same source only with the same list (it then learns
// its cluster on first contact).
func sourceCluster(recorded, prefix, endpoints string) (cluster uint64, same bool) {
	if recorded == replicaSource(prefix, 0) || recorded == endpoints+prefix {
		return 0, true
	}
	rest, ok := strings.CutPrefix(recorded, "etcd cluster ")
	if !ok {
		return 0, false
	}
	id, p, ok := strings.Cut(rest, " prefix ")
	if !ok || p != prefix {
		return 0, false
	}
	cluster, err := strconv.ParseUint(id, 16, 64)
	if err != nil || cluster == 0 || recorded != replicaSource(prefix, cluster) {
		return 0, false
	}
	return cluster, true
}

// checkCluster asks a member which cluster this is and holds the replica
// to it: a replica of no known cluster records it; a replica of another
// cluster, or one ahead of the cluster's revision (the cluster restored
// from an older snapshot, its id unchanged), is emptied (no reads
// meanwhile) and records this one, so the watch finds revision 0 and loads
// the prefix afresh.
func (s *Store) checkCluster(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	resp, err := s.cli.Get(rctx, s.guardKey(nil))
	cancel()
	if err != nil {
		return err
	}
	s.contact(uint64(resp.Header.Revision))
	id, at := resp.Header.ClusterId, uint64(resp.Header.Revision)
	recorded, _ := sourceCluster(s.replica.Source(), s.prefix, s.endpoints)
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	var why string
	switch applied, diverged := s.replica.Revision(), s.diverged.Load(); {
	case diverged != nil:
		why = *diverged
	case recorded != 0 && recorded != id:
		why = "the local replica was made from another etcd cluster (or this one restored from a snapshot under a new id); rebuilding it"
	case applied > at:
		why = "the local replica is ahead of the etcd cluster (restored from an older snapshot?); rebuilding it"
	}
	if why != "" {
		s.log.Warn(why, "replica_cluster", strconv.FormatUint(recorded, 16), "cluster", strconv.FormatUint(id, 16),
			"applied_revision", s.replica.Revision(), "cluster_revision", at)
		s.syncing.Store(true)
		if err := s.replica.Wipe(); err != nil {
			return err
		}
		// The ids reserved from the counter the replica followed may be
		// handed out again by this cluster's counter.
		s.idMu.Lock()
		s.idNext, s.idEnd = 0, 0
		s.idMu.Unlock()
		s.latest.Store(at) // not the lost history's newest (the lag)
		s.diverged.Store(nil)
	}
	s.cluster.Store(id)
	if want := replicaSource(s.prefix, id); s.replica.Source() != want {
		return s.replica.SetSource(want)
	}
	return nil
}

// sentAt is where the replica was when a request was sent: its epoch
// (store.Changes.Epoch: a rebuild empties it and starts another) and the
// revision it had applied. The epoch is read first: a rebuild between the
// two reads shows as a changed epoch, not as the old revision in the new
// epoch.
type sentAt struct{ epoch, before uint64 }

func (s *Store) sentAt() sentAt {
	epoch := s.replica.Changes().Epoch()
	return sentAt{epoch: epoch, before: s.replica.Revision()}
}

// sameHistory reports whether h, the header of a linearizable answer to a
// request sent when the replica was at sent, is of the history the replica
// follows: the cluster it was checked against, at a revision at least
// sent.before (which that cluster had reached when the request was sent).
// If not — the cluster was wiped, restored from a snapshot or replaced
// while the sidecar runs — the replica is rebuilt (diverge). An answer to
// a request sent before the replica was emptied for a rebuild is not of
// its history either, yet says nothing of it: the rebuild read the cluster
// afresh. Its revision is the lost history's, or one of the new history
// below where the rebuild loaded it — judged as a request's of now, it
// would rebuild the replica again, for nothing, while it serves (a heartbeat
// sent during the wipe, answered once the first rebuild was done). The
// answer also counts as contact.
func (s *Store) sameHistory(h *pb.ResponseHeader, sent sentAt) bool {
	s.contact(uint64(h.Revision))
	id := s.cluster.Load()
	if id == 0 { // not checked yet: checkCluster will be
		return true
	}
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	switch {
	case sent.epoch != s.replica.Changes().Epoch():
		// emptied since the request was sent: rebuilt, or being rebuilt
	case h.ClusterId != 0 && h.ClusterId != id: // 0: a header etcd did not fill (as in the watch)
		s.diverge(anotherCluster(h.ClusterId, id))
	case uint64(h.Revision) < sent.before:
		s.diverge(fmt.Sprintf("etcd is at revision %d, behind the local replica's %d: wiped, or restored from an older snapshot; rebuilding the local replica", h.Revision, sent.before))
	default:
		return true
	}
	return false
}

func anotherCluster(got, want uint64) string {
	return fmt.Sprintf("etcd answers as another cluster (%x, the replica's is %x): replaced, or restored from a snapshot under a new id; rebuilding the local replica", got, want)
}

// diverge stops the replica from answering — it holds a history the
// cluster no longer has, and the writes made since are not in it — and has
// the follow loop rebuild it from etcd (checkCluster, as for a replica of
// another cluster at a start).
func (s *Store) diverge(why string) {
	s.syncing.Store(true)
	if s.diverged.CompareAndSwap(nil, &why) {
		s.log.Warn(why, "applied_revision", s.replica.Revision())
		s.setErr(errors.New(why))
	}
	if stop := s.stopWatch.Load(); stop != nil {
		(*stop)()
	}
}

func tlsConfig(o Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no certificate found", o.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Close stops the watch and closes the client and the replica. Closing
// again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopped)
		s.cancel()
		<-s.done
		s.committers.Wait()
		// Not before: a commit the committers send goes out with the
		// lock's compare only while the lock is held. Nor before a
		// LockCopy in flight (cut short by s.cancel) has returned: what
		// it took is released here, or by itself.
		s.lockMu.Lock()
		s.releaseCopyLock()
		s.lockMu.Unlock()
		if s.cli != nil { // nil: never connected (connect)
			s.closeErr = s.cli.Close()
		}
		if err := s.replica.Close(); s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func (s *Store) dataKey(k []byte) string  { return string(s.dataPrefix) + string(k) }
func (s *Store) guardKey(u []byte) string { return s.prefix + "g/" + string(u) }
func (s *Store) idKey() string            { return s.idSeqKey }
func (s *Store) nudgeKey() string         { return s.nudgeMetaKey }
func (s *Store) copyKey() string          { return s.copyMarkKey }

// setPrefix sets the key prefix and the keys made from it.
func (s *Store) setPrefix(prefix string) {
	s.prefix, s.dataPrefix = prefix, []byte(prefix+"k/")
	s.idSeqKey, s.nudgeMetaKey, s.copyMarkKey = prefix+"m/idseq", prefix+"m/nudge", prefix+"m/copying"
}

// View is a snapshot of the replica. A replica still being loaded for the
// first time is not read: it would show a part of the store.
func (s *Store) View() (store.Snapshot, error) {
	if s.syncing.Load() {
		return nil, errSyncing()
	}
	damaged := s.damage.Load().current()
	if testHookViewChecked != nil {
		testHookViewChecked()
	}
	snap, err := s.replica.View()
	if err != nil {
		return nil, err
	}
	// The snapshot's own revision says whether a copy into the prefix was
	// in progress at it: then it may be half a store.
	if n, ok := snap.(interface{ Note() string }); ok && n.Note() != "" && !s.opts.CopyTarget {
		snap.Close()
		return nil, s.errIncomplete(n.Note())
	}
	// Keys permatrix does not write: asked before the snapshot was opened
	// too (a snapshot of a replica emptied and loaded again since shows
	// nothing of the damage the state loaded since forgets), and after,
	// since the damage is published before the replica applies it.
	if damaged == nil {
		damaged = s.damage.Load().refusal(snap.Revision())
	}
	if damaged != nil && !s.opts.CopyTarget {
		snap.Close()
		return nil, damaged
	}
	// The flag was read before the snapshot was opened: the replica may
	// have been emptied since (checkCluster sets syncing, then Wipe) and
	// be loading. Such a snapshot is at revision 0 — emptied, or pages
	// loaded without a revision yet — which no served replica has (a
	// synchronised one is at an etcd revision, at least 1).
	if snap.Revision() == 0 {
		snap.Close()
		return nil, errSyncing()
	}
	return snap, nil
}

// loadingMessage says why a replica answers nothing: it is new, or it is
// rebuilt because etcd's history is no longer the one it followed (a
// cluster wiped, restored or replaced under a running sidecar).
const loadingMessage = "the local replica is being loaded from etcd (new, or rebuilt after etcd's history changed)"

func errSyncing() error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE, loadingMessage)
}

// testHookViewChecked, set by tests only, runs in View between the check
// of syncing and the opening of the replica's snapshot.
var testHookViewChecked func()

// Revision is the etcd revision the replica has applied.
func (s *Store) Revision() uint64 { return s.replica.Revision() }

// Wait returns once the replica has applied rev. Most revisions worth
// waiting for (a write's, the commit a conflict lost to) are commits under
// the prefix, and their events arrive by the watch. A consistency token may
// also be a revision of the cluster made under another prefix (a fleet
// sharing the cluster with others: another sidecar's first load reports
// the cluster's revision): no event of ours will ever carry it. So while
// waiting, the watch is asked for a progress notification now and then
// (RequestProgress): it says that every event of the prefix up to the
// cluster's revision has been delivered, and the replica moves to it.
//
// A replica not yet checked against the cluster (checkCluster) reaches no
// revision: its own may be another cluster's, or ahead of this one's.
func (s *Store) Wait(ctx context.Context, rev uint64) error {
	if rev > 0 {
		if err := s.awaitCheck(ctx); err != nil {
			return err
		}
	}
	for s.replica.Revision() < rev {
		s.askProgress(ctx)
		wctx, cancel := context.WithTimeout(ctx, progressInterval)
		err := s.replica.Wait(wctx, rev)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// progressInterval is how often Wait asks for a progress notification.
const progressInterval = 50 * time.Millisecond

// askProgress asks the watch for a progress notification, unless one was
// asked for less than progressInterval ago: a client sending tokens far
// ahead of the cluster makes its own checks wait, and etcd answer at most
// one request an interval from this sidecar.
func (s *Store) askProgress(ctx context.Context) {
	now := time.Now().UnixNano()
	last := s.progressAsked.Load()
	if now-last < int64(progressInterval) || !s.progressAsked.CompareAndSwap(last, now) {
		return
	}
	// The watch's stream is the one opened with the same metadata
	// (WithRequireLeader). The context is the store's, not the caller's: a
	// stream RequestProgress opens keeps its context's values for its
	// lifetime; and it is bounded: while the watch's stream is being
	// reconnected the request would wait for it.
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(s.alive), progressInterval)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	_ = s.cli.RequestProgress(rctx)
}

// Fresh waits until the replica holds every commit acknowledged before the
// call: one linearizable read of the root guard — which every commit
// writes, so its ModRevision is the newest commit's — then a wait for the
// replica to apply that revision.
//
// Concurrent callers share reads: a caller joins the next read to start
// (one that starts after its call, so it sees every commit acknowledged
// before it), never one already in flight.
func (s *Store) Fresh(ctx context.Context) error {
	if err := s.awaitCheck(ctx); err != nil {
		return err
	}
	r := s.fresh.join()
	var rev uint64
	select {
	case <-r.done:
		if r.err != nil {
			if permatrix.ErrorCode(r.err) == permatrix.EUNAVAILABLE {
				return r.err
			}
			return s.commitError(ctx, r.err)
		}
		rev = r.rev
	case <-ctx.Done():
		return ctx.Err()
	}
	if rev == 0 {
		return nil
	}
	if err := s.waitApplied(ctx, rev); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: this sidecar has not applied etcd revision %d yet (applied: %d)", rev, s.replica.Revision())
	}
	return nil
}

// awaitCheck waits until the replica is known to be of the cluster it
// commits to (checkCluster), at most RequestTimeout: a write's answer is
// never based on a replica that may be another cluster's or ahead of this
// one.
func (s *Store) awaitCheck(ctx context.Context) error {
	select {
	case <-s.checked:
		return nil
	default:
	}
	t := time.NewTimer(s.opts.RequestTimeout)
	defer t.Stop()
	select {
	case <-s.checked:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: the sidecar is stopping; nothing was written")
	case <-t.C:
		if e := s.lastErr.Load(); e != nil {
			// etcd may have answered — and refused (no credentials, a
			// user without access): say what it said, not that it is
			// silent.
			return permatrix.Errorf(permatrix.EUNAVAILABLE,
				"store unavailable: this sidecar has not checked its replica against the etcd cluster since it started (etcd: %s), so its replica is not known to be of this cluster yet; nothing was written", *e)
		}
		return permatrix.Errorf(permatrix.EUNAVAILABLE,
			"store unavailable: etcd has not answered since this sidecar started (within %s), so its replica is not known to be of this cluster yet; nothing was written", s.opts.RequestTimeout)
	}
}

// planOnWiped says whether b was planned on a state the replica no longer
// holds: emptied and loaded afresh since (by the cluster check, or a first
// load), which starts a new epoch of its changes (store.Batch.Epoch). Its
// base revision names the old numbering, so no guard compare can tell what
// changed since — it is planned again.
func (s *Store) planOnWiped(b *store.Batch) bool {
	return b.Epoch != 0 && b.Epoch != s.replica.Changes().Epoch()
}

// waitApplied waits until the replica has applied rev, at most
// RequestTimeout, and not past Close: the watch has stopped then, the
// replica will not move.
func (s *Store) waitApplied(ctx context.Context, rev uint64) error {
	wctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	defer context.AfterFunc(s.alive, cancel)()
	return s.replica.Wait(wctx, rev)
}

// newestCommit reads the root guard's ModRevision (linearizable): the
// newest commit's revision, 0 before the first.
func (s *Store) newestCommit() (uint64, error) {
	rctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
	defer cancel()
	sent := s.sentAt()
	resp, err := s.cli.Get(rctx, s.guardKey(nil))
	if err != nil {
		return 0, err
	}
	if !s.sameHistory(resp.Header, sent) {
		return 0, s.errDiverged()
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return uint64(resp.Kvs[0].ModRevision), nil
}

// divergedWhy says why the replica is being rebuilt (diverge).
func (s *Store) divergedWhy() string {
	if p := s.diverged.Load(); p != nil {
		return *p
	}
	return "etcd's history changed while the request was on its way, and the local replica was rebuilt from it"
}

// errDiverged answers a request that found the cluster's history not the
// replica's (diverge): nothing was written.
func (s *Store) errDiverged() error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: %s; nothing was written", s.divergedWhy())
}

// freshReads runs the linearizable reads of Fresh, one at a time, each
// shared by the callers that joined it before it started.
type freshReads struct {
	read    func() (uint64, error)
	mu      sync.Mutex
	running bool
	next    *freshRead // the read the next callers join; nil: none yet
}

// freshRead is one read and its outcome (set before done closes).
type freshRead struct {
	done chan struct{}
	rev  uint64
	err  error
}

// join returns a read that starts after the call.
func (f *freshReads) join() *freshRead {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = &freshRead{done: make(chan struct{})}
	}
	r := f.next
	if !f.running {
		f.start()
	}
	return r
}

// start runs the joined read (f.mu held), then the one joined meanwhile.
func (f *freshReads) start() {
	r := f.next
	f.next, f.running = nil, true
	go func() {
		r.rev, r.err = f.read()
		close(r.done)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.running = false
		if f.next != nil {
			f.start()
		}
	}()
}

// Changes is the replica's index of recent unit changes.
func (s *Store) Changes() *store.Changes { return s.replica.Changes() }

// commitError says what a failed transaction means for the client.
func (s *Store) commitError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.setErr(err)
	switch {
	case errors.Is(err, rpctypes.ErrNoSpace):
		return permatrix.Errorf(permatrix.ESTORAGE,
			"etcd is out of space (its --quota-backend-bytes; alarm NOSPACE): nothing was written; compact and defragment etcd or raise its quota, then disarm the alarm")
	case errors.Is(err, context.DeadlineExceeded):
		// The request may have reached etcd: all or nothing, but which is
		// not known. Retrying is safe: creating an assignment again finds
		// it, removing it again finds it gone.
		return permatrix.Errorf(permatrix.EUNAVAILABLE,
			"store unavailable: etcd did not answer within %s; the write was made entirely or not at all, and retrying it is safe", s.opts.RequestTimeout)
	}
	if refusal(err) {
		// etcd refused the request: it carried out nothing.
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: etcd: %v; nothing was written", err)
	}
	// Any other error may come after etcd received the request and carried
	// it out: the connection broke before the answer came back (Unavailable
	// "error reading from server: EOF"), a leader change or a proposal that
	// timed out inside etcd. Not known, as when it did not answer.
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: etcd: %v; the write was made entirely or not at all, and retrying it is safe", err)
}

// NextID hands out assignment numbers from a block reserved in etcd.
func (s *Store) NextID(ctx context.Context) (uint64, error) {
	// Not before the replica is checked against the cluster (the client
	// may not be connected yet: connect), nor holding idMu meanwhile
	// (checkCluster resets the block when it rebuilds the replica).
	if err := s.awaitCheck(ctx); err != nil {
		return 0, err
	}
	s.idMu.Lock()
	defer s.idMu.Unlock()
	for {
		if s.idsEpoch != s.idEpoch.Load() {
			s.idNext, s.idEnd = 0, 0 // reserved before a copy's mark came or went
		}
		if s.idNext < s.idEnd {
			break
		}
		e := s.idEpoch.Load()
		if err := s.reserveIDs(ctx); err != nil {
			return 0, err
		}
		s.idsEpoch = e
	}
	n := s.idNext
	s.idNext++
	return n, nil
}

// reserveIDs moves the shared counter up by idBlock.
func (s *Store) reserveIDs(ctx context.Context) error {
	cur, err := s.moveIDCounter(ctx, "reserve assignment ids", func(cur uint64) (uint64, bool) { return cur + idBlock, true })
	if err != nil {
		return err
	}
	s.idNext, s.idEnd = cur+1, cur+idBlock+1
	return nil
}

// moveIDCounter sets the shared id counter from its value cur to
// next(cur) with a compare-and-swap, read again and retried while other
// sidecars move it; next says false to leave it as it is. It returns the
// value it moved from (or left).
func (s *Store) moveIDCounter(ctx context.Context, what string, next func(cur uint64) (uint64, bool)) (uint64, error) {
	for attempt := 0; attempt < 32; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		resp, err := s.cli.Get(rctx, s.idKey())
		if err != nil {
			cancel()
			return 0, s.commitError(ctx, err)
		}
		var cur uint64
		var modRev int64
		if len(resp.Kvs) == 1 {
			if cur, err = idCounterValue(resp.Kvs[0].Value); err != nil {
				cancel()
				return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "could not %s: etcd prefix %s holds the key %s, %v: repair it in etcd (docs/fleet.md)", what, s.prefix, strconv.Quote(s.idKey()), err)
			}
			modRev = resp.Kvs[0].ModRevision
			s.sawIDCounter(cur)
		} else {
			// Absent: put back at its floor, read from the replica (one
			// pass of its assignment index) outside the request's time.
			cancel()
			if cur, err = s.idFloor(ctx, what, resp.Header.Revision); err != nil {
				return 0, err
			}
			rctx, cancel = context.WithTimeout(ctx, s.opts.RequestTimeout)
		}
		to, move := next(cur)
		if !move && modRev != 0 {
			cancel()
			return cur, nil
		}
		if !move {
			to = cur // absent: put back at its floor
		}
		// Seen before it is put, whatever the put's outcome: if the
		// counter is deleted before this sidecar's watch brings its own
		// put back, idFloor still starts above the ids reserved here (a
		// floor too high only skips ids).
		s.sawIDCounter(to)
		txn, err := s.cli.Txn(rctx).
			If(clientv3.Compare(clientv3.ModRevision(s.idKey()), "=", modRev)).
			Then(clientv3.OpPut(s.idKey(), strconv.FormatUint(to, 10))).Commit()
		cancel()
		if err != nil {
			return 0, s.commitError(ctx, err)
		}
		if txn.Succeeded {
			return cur, nil
		}
	}
	return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "could not %s: too much contention", what)
}

// idFloor is where an absent id counter is put back from: above every id
// the replica holds in the sequence's form, every value of the counter
// this sidecar has read, and the counter's last value in etcd's history
// (lastIDCounter). Absent, the counter is a new fleet's (never reserved
// from: 0, or the highest id an import gave), or was deleted in etcd —
// then starting again from 1 would hand out again the ids of deleted
// assignments, and a client's DELETE by such a stale id would remove
// another grant (TestDeletedIDCounter); from the ids held alone, a
// sidecar on a new replica handed out again the deleted ids above them
// (TestDeletedIDCounterOnANewReplica). The ids of assignments held are
// skipped whatever the counter says (store.Tx.CreateAssignment).
func (s *Store) idFloor(ctx context.Context, what string, absentAt int64) (uint64, error) {
	snap, err := s.View()
	if err != nil {
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "could not %s: etcd prefix %s holds no id counter (the key %s) and the replica could not be read for the ids it holds: %v", what, s.prefix, strconv.Quote(s.idKey()), err)
	}
	held, err := store.HighestAssignmentNumber(snap)
	snap.Close()
	if err != nil {
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "could not %s: reading the replica for the ids it holds: %v", what, err)
	}
	seen := s.idSeen.Load()
	last, known, err := s.lastIDCounter(ctx, absentAt, held > 0 || seen > 0)
	if err != nil {
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "could not %s: etcd prefix %s holds no id counter (the key %s) and its history could not be read: %v", what, s.prefix, strconv.Quote(s.idKey()), err)
	}
	switch {
	case !known && (held > 0 || seen > 0):
		s.log.Warn("the assignment id counter is missing from etcd and its history is compacted: putting it back above every id held and every value of it seen here; ids of assignments deleted above them may be handed out again (docs/fleet.md)",
			"key", s.idKey(), "highest_id_held", held, "highest_counter_seen", seen)
	case last > 0 || seen > 0:
		s.log.Warn("the assignment id counter is missing from etcd (deleted?): putting it back above every id held, every value of it seen here and its last value in etcd's history",
			"key", s.idKey(), "highest_id_held", held, "highest_counter_seen", seen, "last_counter_in_history", last)
	}
	return max(held, seen, last), nil
}

// lastIDCounter reads the id counter's value in the newest revision
// before absentAt (where it is absent) that held it: probing back from
// absentAt by doubling steps to a revision that holds it, then halving
// the gap to that revision's last one before a deletion, then reading
// every value the key held from that deletion to absentAt
// (idCounterSince). Counter values only grow (reservations add, a put
// back floors above all before): the newest life's last value is the
// highest. The probes alone found a life only where they landed: they
// leapt over a later, shorter one between two of them
// (TestDeletedIDCounterPutBackAndDeletedAgain), or over every life of a
// counter deleted before more revisions were written than it had lived,
// to revision 1, as if it had never been put
// (TestDeletedIDCounterAfterOtherWrites). So where they find none, a
// counter that lived (lived: ids are held or were seen) has its whole
// history read, since the fleet began (fleetStart); one that may never
// have been put (a new fleet's) is 0, not read back through the
// cluster's revisions. Known is false when the history needed was
// compacted.
func (s *Store) lastIDCounter(ctx context.Context, absentAt int64, lived bool) (last uint64, known bool, err error) {
	at := func(rev int64) (uint64, bool, error) {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		defer cancel()
		resp, err := s.cli.Get(rctx, s.idKey(), clientv3.WithRev(rev))
		if err != nil || len(resp.Kvs) == 0 {
			return 0, false, err
		}
		n, err := idCounterValue(resp.Kvs[0].Value)
		return n, err == nil, nil // a value not a number: no floor from it
	}
	absent := absentAt
	var held int64
	for step := int64(1); held == 0; step *= 2 {
		rev := max(absentAt-step, 1)
		n, ok, err := at(rev)
		compacted := errors.Is(err, rpctypes.ErrCompacted)
		if compacted || err == nil && !ok && rev == 1 {
			if !lived {
				return 0, !compacted, nil // never put, or its history compacted
			}
			from, err := s.fleetStart(ctx)
			if err != nil {
				return 0, false, err
			}
			return s.idCounterSince(ctx, from, absentAt)
		}
		if err != nil {
			return 0, false, err
		}
		if ok {
			held, last = rev, n
			break
		}
		absent = rev
	}
	for absent-held > 1 { // held holds the key, absent does not
		mid := held + (absent-held)/2
		n, ok, err := at(mid)
		if errors.Is(err, rpctypes.ErrCompacted) {
			break // idCounterSince reads from the compaction on
		}
		if err != nil {
			return 0, false, err
		}
		if ok {
			held, last = mid, max(last, n)
		} else {
			absent = mid
		}
	}
	later, _, err := s.idCounterSince(ctx, absent, absentAt)
	if err != nil {
		return 0, false, err
	}
	return max(last, later), true, nil
}

// fleetStart is the oldest revision the id counter's history can matter
// from: the creation of the fleet's marker or of its root guard, whichever
// is older (1 with neither). The marker is put before a sidecar serves; the
// root guard by the first commit, whose reservation put the counter just
// before, in a life that goes on past it. So the whole history of a
// counter read from there is the cluster's revisions since the fleet
// began, not since the cluster did: a store copy into a new prefix, which
// raises a counter absent over the ids it copied, reads only its own.
func (s *Store) fleetStart(ctx context.Context) (int64, error) {
	from := int64(0)
	for _, key := range []string{s.prefix + fleetMarkName, s.guardKey(nil)} {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		resp, err := s.cli.Get(rctx, key, clientv3.WithKeysOnly())
		cancel()
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) == 1 && (from == 0 || resp.Kvs[0].CreateRevision < from) {
			from = resp.Kvs[0].CreateRevision
		}
	}
	return max(from, 1), nil
}

// idCounterSince reads the highest value the id counter held from the
// revision from to absentAt: one watch of the key from from, its puts'
// values and its deletions' previous ones, up to a progress notification
// (every event before it delivered). etcd scans the revisions since from
// once for it (docs/fleet.md). The watch has its own stream: a progress
// request asks every watch of its stream, the replica's among them. Known
// is false when etcd compacted past from and no revision left holds the
// counter.
func (s *Store) idCounterSince(ctx context.Context, from, absentAt int64) (last uint64, known bool, err error) {
	wctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "permatrix-watch", "id-counter-history"), s.opts.RequestTimeout)
	defer cancel()
	compacted := false
	for {
		wch := s.cli.Watch(wctx, s.idKey(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
		done, restart, err := readIDCounterHistory(wctx, wch, absentAt, func(n uint64) { last, known = max(last, n), true }, func() error { return s.cli.RequestProgress(wctx) })
		switch {
		case err != nil:
			return 0, false, fmt.Errorf("reading the key's history: %w", err)
		case done:
			return last, known || !compacted, nil
		case restart > 0:
			from, compacted = restart, true
		default:
			return 0, false, errors.New("reading the key's history: the watch closed")
		}
	}
}

// readIDCounterHistory reads the watch wch of the id counter's history:
// each value before absentAt to saw, until a progress notification (done)
// or a compaction's revision to start again from (restart). Progress is
// asked for until answered: etcd answers only once the watch has sent the
// history it had to read (it drops a request made before).
func readIDCounterHistory(ctx context.Context, wch clientv3.WatchChan, absentAt int64, saw func(uint64), askProgress func() error) (done bool, restart int64, err error) {
	var ask <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return false, 0, context.Cause(ctx)
		case <-ask:
			if err := askProgress(); err != nil {
				return false, 0, err
			}
		case resp, ok := <-wch:
			switch {
			case !ok:
				return false, 0, ctx.Err()
			case resp.CompactRevision > 0:
				return false, resp.CompactRevision, nil
			case resp.Err() != nil:
				return false, 0, resp.Err()
			case resp.Created:
				t := time.NewTicker(progressInterval)
				defer t.Stop()
				ask = t.C
				if err := askProgress(); err != nil {
					return false, 0, err
				}
			case resp.IsProgressNotify():
				if resp.Header.Revision >= absentAt-1 {
					return true, 0, nil
				}
			}
			for _, ev := range resp.Events {
				if ev.Kv.ModRevision >= absentAt {
					return true, 0, nil // a put back after the absence was read: not its history
				}
				kv := ev.Kv
				if ev.Type == mvccpb.DELETE {
					kv = ev.PrevKv // nil when compacted
				}
				if kv == nil {
					continue
				}
				if n, err := idCounterValue(kv.Value); err == nil { // a value not a number: no floor from it
					saw(n)
				}
			}
		}
	}
}

// sawIDCounter records n, a value of the id counter read from etcd (idSeen).
func (s *Store) sawIDCounter(n uint64) {
	for {
		old := s.idSeen.Load()
		if n <= old || s.idSeen.CompareAndSwap(old, n) {
			return
		}
	}
}

func (s *Store) contact(rev uint64) {
	s.lastContact.Store(time.Now().UnixNano())
	for {
		old := s.latest.Load()
		if rev <= old || s.latest.CompareAndSwap(old, rev) {
			return
		}
	}
}

func (s *Store) setErr(err error) {
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// follow keeps the replica in step with etcd until ctx ends: a watch from
// the replica's revision, a resync when that is compacted, reconnection
// with backoff after errors.
func (s *Store) follow(ctx context.Context) {
	if !s.connect(ctx) {
		close(s.done)
		return
	}
	beat := make(chan struct{})
	go func() { defer close(beat); s.heartbeat(ctx) }()
	defer func() { <-beat; close(s.done) }()
	backoff := 100 * time.Millisecond
	checked := false
	for ctx.Err() == nil {
		if s.replicaBroken() {
			return
		}
		if !checked {
			if err := s.checkCluster(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.setErr(err)
				s.log.Warn("etcd not reached, or it refused to say which cluster it is; retrying", "err", err, "applied_revision", s.replica.Revision())
				sleep(ctx, backoff)
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			checked, backoff = true, 100*time.Millisecond
			select {
			case <-s.checked: // checked again after diverge
			default:
				close(s.checked)
			}
		}
		err := s.watch(ctx)
		s.watching.Store(false)
		if ctx.Err() != nil || s.replicaBroken() {
			return
		}
		if s.diverged.Load() != nil {
			checked = false // rebuild from what the cluster holds
			continue
		}
		if errors.Is(err, errCompacted) {
			if err := s.resync(ctx); err != nil {
				s.log.Warn("etcd resync failed; retrying", "err", err)
				s.setErr(err)
				sleep(ctx, backoff)
				backoff = min(backoff*2, 5*time.Second)
			} else {
				backoff = 100 * time.Millisecond
			}
			continue
		}
		if err != nil {
			s.setErr(err)
			s.log.Warn("etcd watch ended; resuming", "err", err, "applied_revision", s.replica.Revision())
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// replicaBroken says whether the replica is broken (a fault in its file:
// internal/bolt), and then, once, that following stops: nothing can be
// applied to it until serve restarts, and following on would have etcd
// send every event since its revision again at every retry (a compacted
// one, the whole prefix). Its sidecar serves nothing meanwhile (503, not
// ready); restarted, it sets the damaged replica aside and rebuilds it.
func (s *Store) replicaBroken() bool {
	err := s.replica.Broken()
	if err == nil {
		return false
	}
	s.setErr(err)
	s.log.Error("the replica is broken: this sidecar follows etcd no more and serves nothing; restart serve, which sets the damaged replica aside and rebuilds it from etcd",
		"err", err, "applied_revision", s.replica.Revision())
	return true
}

// heartbeat reads the root guard now and then until ctx ends, so that
// "last contact" (/health, --max-staleness) measures etcd's silence, not
// the fleet's: an idle watch hears nothing — etcd sends no progress
// notification to a watch that started after its latest revision. When the
// cluster is ahead of the replica it asks for one.
//
// A read may take longer than the interval between reads: an answer is
// contact as long as it comes within --max-staleness, so that is how long
// one waits (a read given up on after an interval made an etcd answering
// slower than that — a loaded machine, a far cluster — silent, and the
// store not ready).
func (s *Store) heartbeat(ctx context.Context) {
	every, wait := 5*time.Second, 5*time.Second
	if m := s.opts.MaxStaleness; m > 0 {
		every = min(every, max(m/3, 50*time.Millisecond))
		wait = max(m, every)
	}
	wait = min(wait, s.opts.RequestTimeout)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, wait)
		sent := s.sentAt()
		resp, err := s.cli.Get(rctx, s.guardKey(nil))
		cancel()
		switch {
		case err == nil:
			if !s.sameHistory(resp.Header, sent) {
				break
			}
			if uint64(resp.Header.Revision) > s.replica.Revision() {
				// Other prefixes' writes (a shared cluster), or events on
				// their way: a progress notification moves the replica to
				// the cluster's revision if nothing of ours is pending, so
				// the lag does not count other fleets' writes for long.
				s.askProgress(ctx)
			}
		case ctx.Err() == nil:
			s.setErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var errCompacted = errors.New("etcd: the replica's revision is compacted")

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// watch applies the prefix's changes from the replica's revision on, until
// the watch breaks.
func (s *Store) watch(ctx context.Context) error {
	from := s.replica.Revision() + 1
	if from == 1 {
		return errCompacted // a new replica starts from a full read
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	s.stopWatch.Store(&cancel)
	defer s.stopWatch.Store(nil)
	if s.diverged.Load() != nil { // diverge ran before the watch could be stopped
		return nil
	}
	if err := s.checkCounterAt(wctx, from-1); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return errCompacted
		}
		return err
	}
	// The data keys and the meta keys ("k/" up to the prefix's end: "m/"),
	// not the guards ("g/"): the guards' events would say nothing the
	// data's do not (a commit writes the guard of every unit its keys bump,
	// in the same revision, and apply derives those units from the keys),
	// yet they are most of a commit's keys — every sidecar's watch carried
	// them. The meta keys' revisions (the id counter's; a commit's that
	// changed no data key, see nudge) must reach the replica: a new
	// sidecar's first load reports the cluster's revision, which may be
	// one of them, and its decisions' consistency tokens with it.
	ch := s.cli.Watch(wctx, string(s.dataPrefix), clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix)), clientv3.WithRev(int64(from)), clientv3.WithProgressNotify())
	s.watching.Store(true)
	var events []*clientv3.Event
	for resp := range ch {
		// The responses already waiting are applied with this one, in one
		// replica transaction: under many writes the replica keeps up by
		// applying several revisions at a time, not one fsync each.
		events = events[:0]
		var progress uint64
		for more := true; more; {
			if resp.CompactRevision > 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return errCompacted
			}
			if err := resp.Err(); err != nil {
				return err
			}
			// Every response says how far the cluster is (for the lag).
			// A progress notification also says that every event of the
			// watch up to that revision has been delivered (etcd's
			// guarantee: none at or below it comes later), so the replica
			// may move to it once the events before it are applied: the
			// revisions other prefixes made then reach this fleet's
			// sidecars, and with them the consistency tokens that name
			// them (see Wait). An event response's header promises
			// nothing of the kind.
			// The watch resumes by itself on a new connection — to
			// another cluster, if one replaced this one on its
			// addresses: its events past the replica's revision would be
			// applied on the lost cluster's state. Nothing of this batch
			// is (the replica is rebuilt).
			if id := s.cluster.Load(); resp.Header.ClusterId != 0 && id != 0 && resp.Header.ClusterId != id {
				s.diverge(anotherCluster(resp.Header.ClusterId, id))
				return nil
			}
			s.contact(uint64(resp.Header.Revision))
			if resp.IsProgressNotify() {
				progress = max(progress, uint64(resp.Header.Revision))
			}
			events = append(events, resp.Events...)
			if len(events) >= maxApply {
				break
			}
			select {
			case resp, more = <-ch:
			default:
				more = false
			}
		}
		if err := s.apply(events); err != nil {
			return err
		}
		if progress > s.replica.Revision() {
			// No data changed between the last event and progress.
			if err := s.replica.Apply(progress, nil, nil); err != nil {
				return fmt.Errorf("moving the replica to etcd revision %d: %w", progress, err)
			}
		}
	}
	return errors.New("etcd watch closed")
}

// maxApply bounds the events applied to the replica in one transaction
// (revisions are never split: a response holds whole revisions).
const maxApply = 50_000

// apply writes the events of one or more whole revisions to the replica in
// one transaction, and records as changed the units their keys bump
// (store.WriteUnits): the units whose guards the commits wrote.
func (s *Store) apply(events []*clientv3.Event) error {
	b := store.Batch{Ops: make([]store.Op, 0, len(events))}
	var rev uint64
	var note *string    // the copy marker, if these revisions put or deleted it
	var counter *[]byte // the id counter's last value, if these revisions put or deleted it (nil: deleted)
	for _, ev := range events {
		rev = max(rev, uint64(ev.Kv.ModRevision))
		key, ok := bytes.CutPrefix(ev.Kv.Key, s.dataPrefix)
		if !ok {
			switch string(ev.Kv.Key) {
			case s.copyKey():
				v := ""
				if ev.Type != mvccpb.DELETE {
					v = markNote(string(ev.Kv.Value))
				}
				note = &v
			case s.idKey():
				var v []byte
				if ev.Type != mvccpb.DELETE {
					v = ev.Kv.Value
					if n, err := idCounterValue(v); err == nil {
						s.sawIDCounter(n) // a value put over or deleted after, in these revisions
					}
				}
				counter = &v
			}
			continue // a meta key's: the revision, no data
		}
		if ev.Type == mvccpb.DELETE {
			b.Ops = append(b.Ops, store.Op{Key: key, Delete: true})
		} else {
			b.Ops = append(b.Ops, store.Op{Key: key, Value: ev.Kv.Value})
		}
	}
	if rev == 0 {
		return nil
	}
	// Every record is checked as it is applied (damage.go): the damage
	// is published before a snapshot can show it, its repair after.
	damage := editDamage(s.damage.Load())
	checkHeld := note != nil && *note == "" && s.uncheckedHeld.Load()
	if checkHeld {
		if err := s.damageHeld(damage); err != nil {
			return fmt.Errorf("checking the replica's records as the copy's mark goes: %w", err)
		}
	}
	s.damageAfter(damage, b.Ops)
	if counter != nil {
		s.damageOfCounter(damage, *counter)
	}
	s.publishDamage(damage, rev, true, false)
	b.Ops = replicableOps(b.Ops) // the others are damage, and bbolt would refuse the revision
	var err error
	if note != nil {
		s.idEpoch.Add(1) // a copy began or ended: ids reserved before are not to be handed out
		err = s.replica.ApplyNote(rev, b.Ops, b.Writes(), *note)
	} else {
		err = s.replica.Apply(rev, b.Ops, b.Writes())
	}
	if err != nil {
		return fmt.Errorf("applying etcd revision %d to the replica: %w", rev, err)
	}
	if checkHeld {
		s.uncheckedHeld.Store(false)
	}
	s.publishDamage(damage, rev, false, false)
	return nil
}

// resync brings the replica to one consistent read of the prefix (every
// page read at the revision of the first). A replica that has a revision
// gets the differences in one transaction: readers see the old state or the
// new one. A new replica (revision 0) is loaded page by page and refuses
// reads until the last page is in (syncing).
func (s *Store) resync(ctx context.Context) error {
	start := time.Now()
	initial := s.replica.Revision() == 0
	if initial {
		s.syncing.Store(true)
		if err := s.replica.Wipe(); err != nil { // whatever an interrupted first sync left
			return err
		}
	}
	var rev int64
	var ops []store.Op
	var last []byte // the last key of the previous page
	keys := 0
	found := &damageEdit{fresh: true} // the damaged keys read (damage.go)
	from := string(s.dataPrefix)
	end := clientv3.GetPrefixRangeEnd(from)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(resyncPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		resp, err := s.cli.Get(rctx, from, opts...)
		cancel()
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		page := make([]store.Op, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			page[i] = store.Op{Key: kv.Key[len(s.prefix)+2:], Value: kv.Value}
		}
		s.damageAfter(found, page) // every record read, not only those that differ
		keys += len(page)
		more := resp.More && len(resp.Kvs) > 0
		if page = replicableOps(page); len(page) == 0 && more {
			// Only keys the replica cannot hold (damage): the next
			// page's differences start after the last key kept.
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
			continue
		}
		if initial {
			if err := s.replica.Load(page); err != nil {
				return err
			}
		} else {
			var upTo []byte // nil: to the end of the replica
			if more {
				upTo = page[len(page)-1].Key
			}
			d, err := s.diff(page, last, upTo)
			if err != nil {
				return err
			}
			ops = append(ops, d...)
		}
		if !more {
			break
		}
		last = page[len(page)-1].Key
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	// The copy marker at the same revision: the replica serves what it
	// loaded only if no copy into the prefix was in progress then.
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	mark, err := s.cli.Get(rctx, s.copyKey(), clientv3.WithRev(rev))
	cancel()
	if err != nil {
		return err
	}
	note := ""
	if len(mark.Kvs) > 0 {
		note = markNote(string(mark.Kvs[0].Value))
	}
	// The id counter at the same revision (damage.go).
	rctx, cancel = context.WithTimeout(ctx, s.opts.RequestTimeout)
	counter, err := s.cli.Get(rctx, s.idKey(), clientv3.WithRev(rev))
	cancel()
	if err != nil {
		return err
	}
	var counterValue []byte
	if len(counter.Kvs) > 0 {
		counterValue = counter.Kvs[0].Value
	}
	s.damageOfCounter(found, counterValue)
	s.contact(uint64(rev))
	// The events between are not known: a copy may have come and gone
	// (NextID: ids reserved before are dropped).
	s.idEpoch.Add(1)
	found.was = s.damage.Load() // the apply loop alone publishes damage
	s.publishDamage(found, uint64(rev), true, initial)
	if err := s.replica.ResyncNote(uint64(rev), ops, note); err != nil {
		return err
	}
	s.uncheckedHeld.Store(false) // every record it holds now was read and checked
	s.publishDamage(found, uint64(rev), false, initial)
	s.syncing.Store(false)
	s.log.Info("replica synchronised from etcd", "revision", rev, "keys", keys, "changed", len(ops), "first", initial, "took", time.Since(start).String())
	return nil
}

// diff is what turns the replica's keys after `after` and up to upTo (nil:
// to the end) into page (sorted by key, covering that range).
func (s *Store) diff(page []store.Op, after, upTo []byte) ([]store.Op, error) {
	snap, err := s.replica.View()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	var ops []store.Op
	i := 0
	err = snap.Scan(nil, after, func(k, v []byte) error {
		if upTo != nil && bytes.Compare(k, upTo) > 0 {
			return store.ErrStop
		}
		for i < len(page) && bytes.Compare(page[i].Key, k) < 0 {
			ops = append(ops, page[i])
			i++
		}
		if i < len(page) && bytes.Equal(page[i].Key, k) {
			if !bytes.Equal(page[i].Value, v) {
				ops = append(ops, page[i])
			}
			i++
			return nil
		}
		ops = append(ops, store.Op{Key: bytes.Clone(k), Delete: true})
		return nil
	})
	return append(ops, page[i:]...), err
}

// Replication is the state of the connection, for /health.
type Replication struct {
	AppliedRevision uint64    `json:"applied_revision"`
	LatestRevision  uint64    `json:"latest_revision"`
	Lag             uint64    `json:"lag"`
	LastContact     time.Time `json:"last_contact,omitzero"`
	Watching        bool      `json:"watching"`
	LastError       string    `json:"last_error,omitempty"`
}

// Health is ready unless the replica is being loaded (new, or rebuilt),
// its disk refuses writes, or etcd has not been heard from for longer than
// Options.MaxStaleness (when set); it reports the replication's state.
func (s *Store) Health() store.Health {
	r := s.Replication()
	h := s.replica.Health()
	h.Replication = r
	switch {
	case !h.Ready:
	case s.syncing.Load():
		h.Ready, h.Error = false, loadingMessage
	case s.replica.Note() != "" && !s.opts.CopyTarget:
		h.Ready, h.Error = false, permatrix.ErrorMessage(s.errIncomplete(s.replica.Note()))
	case s.damage.Load().refusal(s.replica.Revision()) != nil && !s.opts.CopyTarget:
		h.Ready, h.Error = false, permatrix.ErrorMessage(s.damage.Load().refusal(s.replica.Revision()))
	case s.opts.MaxStaleness > 0 && (r.LastContact.IsZero() || time.Since(r.LastContact) > s.opts.MaxStaleness):
		h.Ready = false
		h.Error = fmt.Sprintf("etcd not heard from for over %s (--max-staleness); decisions answer from the replica at revision %d", s.opts.MaxStaleness, r.AppliedRevision)
		h.ErrorAt = r.LastContact
	}
	return h
}

// Replication reports the applied revision, how far behind the newest
// revision heard of it is, and when etcd last answered.
func (s *Store) Replication() Replication {
	h := Replication{AppliedRevision: s.replica.Revision(), LatestRevision: s.latest.Load(), Watching: s.watching.Load()}
	if h.LatestRevision > h.AppliedRevision {
		h.Lag = h.LatestRevision - h.AppliedRevision
	}
	if t := s.lastContact.Load(); t > 0 {
		h.LastContact = time.Unix(0, t).UTC()
	}
	if e := s.lastErr.Load(); e != nil {
		h.LastError = *e
	}
	return h
}

// RaiseIDs makes every assignment number any sidecar reserves from now on
// greater than n (store.IDFloor).
func (s *Store) RaiseIDs(ctx context.Context, n uint64) error {
	if err := s.awaitCheck(ctx); err != nil { // as NextID
		return err
	}
	_, err := s.moveIDCounter(ctx, "raise the assignment id counter", func(cur uint64) (uint64, bool) { return n, cur < n })
	return err
}
