//! Every limit and tuning constant of the registry, in one place.

use std::time::Duration;

/// Largest manifest accepted (distribution's and Harbor's cap): bigger ones answer 413.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Most of a refused manifest body read (and discarded) before the 413 goes out: a few
/// times the limit covers clients that overshoot it, without reading whatever a hostile
/// client announces.
pub const MAX_MANIFEST_DRAIN: usize = 4 * MAX_MANIFEST_BYTES;
/// Largest page of tags or repositories one request returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;
/// Chunk size for streaming blobs out of the filesystem. hyper gathers several chunks into
/// one `writev`, so small chunks cost no more syscalls than large ones; measured with
/// `bench/download.sh`, 64 KiB used no more CPU per byte than 128 KiB – 1 MiB (less on a
/// busy machine) and the least memory.
pub const READ_CHUNK: usize = 64 * 1024;
/// Chunks a blob download reads ahead of the socket: enough to keep the reader busy while
/// hyper writes, little enough that a slow client pins at most this many chunks besides
/// hyper's write queue (about 400 KiB).
pub const READ_AHEAD: usize = 4;
/// Bytes gathered from the request body before one write+hash step runs off the runtime.
/// Large enough to amortise the blocking hand-off, small enough to bound memory per upload.
pub const WRITE_BATCH: usize = 1024 * 1024;
/// An upload asks the kernel to start writing back every this many bytes, so the fsync
/// before commit does not stall on gigabytes of dirty pages at once.
pub const WRITEBACK_EVERY: u64 = 64 * 1024 * 1024;
/// Writer locks of the metadata store, striped by repository name: writes to different
/// repositories rarely share one, and the table stays a few KiB.
pub const META_WRITE_STRIPES: usize = 64;
/// sled page-cache budget. Manifests are small; the cache only needs the hot set.
pub const META_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// How long a graceful shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Most of a refused chunk's body read (and discarded) before answering, so the client sees
/// the error rather than a reset connection; beyond this the connection is simply closed.
/// Clients send a whole layer in one PATCH, so a disk that fills early in a layer leaves
/// most of it unsent: the bound is a large layer, and `DRAIN_TIMEOUT` caps slow senders.
pub const DRAIN_LIMIT: usize = 1024 * 1024 * 1024;
/// Longest time spent draining a refused body.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Default lifetime of a token from `/service/token`. Short: clients fetch a new one on the
/// next 401, and a revoked membership stops a token's holder within this time at most
/// (permissions are also re-checked live on every request).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Clock skew tolerated when checking a token's times.
pub const TOKEN_LEEWAY_SECS: u64 = 5;
/// Most scopes one token request may ask for.
pub const MAX_SCOPES: usize = 32;
/// A checked password is remembered this long, so clients that send Basic credentials on
/// every request (as Harbor allows) do not pay an argon2 hash each time.
pub const LOGIN_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most remembered logins.
pub const LOGIN_CACHE_MAX: usize = 4096;
/// Most argon2 hashes computed at once (each takes ~19 MiB and ~30 ms of one core). Two
/// keep a password flood from more than two cores' worth of work and bound the pooled
/// working memory to ~38 MiB.
pub const MAX_CONCURRENT_HASHES: usize = 2;
/// Every argon2 working buffer is allocated larger than this: glibc's largest dynamic mmap
/// threshold (32 MiB on 64-bit), so the allocation is always a mapping of its own that is
/// returned to the system when freed, never a piece of a heap that keeps it.
pub const HASH_MEMORY_FLOOR: usize = 32 * 1024 * 1024;
/// An argon2 buffer no check has used for this long is freed (given back to the system).
pub const HASH_MEMORY_IDLE: Duration = Duration::from_secs(10);
/// Largest argon2 working memory a stored hash may ask for (1 KiB blocks): 64 MiB.
pub const MAX_HASH_MEMORY_BLOCKS: usize = 64 * 1024;
/// How long a password check waits for an argon2 slot before the caller is told to come
/// back later (429). Short: a queue this deep already means a flood.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// Password checks one client address may start per second, on average. A person or a CI
/// job logs in a few times a minute (checked logins are cached), a guesser wants
/// thousands: five a second keeps one address below a sixth of a core.
pub const PASSWORD_CHECKS_PER_SEC: u32 = 5;
/// Password checks one address may start at once before the rate applies.
pub const PASSWORD_CHECK_BURST: u32 = 10;
/// Most client addresses tracked by the per-address limiter.
pub const ADDRESS_LIMITER_MAX_ENTRIES: usize = 10_000;
/// How long the escalation of a pair's lockouts is remembered after its last lock ended.
pub const ESCALATION_MEMORY: Duration = Duration::from_secs(3600);
/// Longest secret (password or robot secret) looked at; longer ones are refused unread.
pub const MAX_SECRET_BYTES: usize = 1024;
/// Failed logins for one user from one address within [`FAILED_LOGIN_WINDOW`] before
/// that pair is locked out.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// The window in which failures count.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// The first lockout; each further one doubles, up to [`LOCKOUT_MAX`].
pub const LOCKOUT_BASE: Duration = Duration::from_secs(30);
/// The longest lockout.
pub const LOCKOUT_MAX: Duration = Duration::from_secs(900);
/// Most user/address pairs tracked by the brute-force throttle (entries are fixed-size:
/// keyed by a hash).
pub const THROTTLE_MAX_ENTRIES: usize = 10_000;
/// Longest user name (names are also the login, so a bound here bounds every cache and
/// log line keyed by one).
pub const MAX_USER_NAME: usize = 64;
/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Largest JSON body of a management API request.
pub const MAX_API_BODY: usize = 64 * 1024;
/// How long `/metrics` reuses its count of blobs and manifests: counting visits every one
/// of them, so a busy scraper pays for it at most once per this period.
pub const STORE_STATS_MAX_AGE: Duration = Duration::from_secs(30);
/// Audit events waiting to be written before recording ones wait.
pub const AUDIT_QUEUE: usize = 16 * 1024;
/// Most audit events written in one batch.
pub const AUDIT_BATCH: usize = 512;
/// Most audit entries one query scans (it returns a cursor to go on from).
pub const AUDIT_SCAN_LIMIT: usize = 200_000;
/// Largest audit page.
pub const AUDIT_PAGE_MAX: usize = 1000;
/// Default audit page.
pub const AUDIT_PAGE_DEFAULT: usize = 100;
/// How often events past the retention are dropped.
pub const AUDIT_PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Default audit retention in days (0 keeps everything).
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 180;

/// Default time a request head may take to arrive, once its first byte has.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time a keep-alive connection may idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a request body may go without delivering a byte.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Largest request head (request line and headers) accepted; a bigger one is answered 431
/// and the connection closed. Registry requests carry a handful of headers and at most a
/// bearer token of a few KiB; hyper's default would take in (and hand on) ~400 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// File descriptors kept out of the connection budget when `max_connections` is fitted to
/// the process's open-file limit: the listener, the metadata store, the audit log, the
/// runtime's own, and connections being refused.
pub const FD_RESERVE: usize = 64;
/// File descriptors one connection may hold: its socket, and the file of the blob it
/// uploads or downloads.
pub const FDS_PER_CONNECTION: usize = 2;
/// Pause after `accept()` fails for want of resources (EMFILE, ENFILE, ENOBUFS): the
/// connection stays queued and the next `accept()` would fail at once, so retrying without
/// a pause would spin a core while nothing can change.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// `Retry-After` of the 503 a connection over the limit gets: connections turn over within
/// seconds, so clients may try again soon.
pub const REFUSED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a connection over the limit is kept after its 503 was written, reading what the
/// client sent: closing with its request unread would reset the connection, and a reset can
/// destroy the answer before the client read it.
pub const REFUSED_LINGER: Duration = Duration::from_secs(1);
/// Most bytes read (and discarded) from a refused connection while it lingers.
pub const REFUSED_DRAIN_BYTES: usize = 64 * 1024;
/// Refused connections lingering at once; beyond this they are closed without an answer, so
/// a flood cannot turn refusals into a second way of running out of file descriptors.
pub const MAX_REFUSING: usize = 16;
/// What `Retry-After` tells a client whose request met a store that is unavailable for the
/// moment (a lost connection, a timeout, throttling): long enough for a reconnect, short
/// enough that a push does not stall.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Default lifetime of an untouched upload session (distribution keeps them a week; a day
/// is plenty for a resumed push and bounds what abandoned sessions hold).
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often expired upload sessions are swept. A session is thus dropped between its TTL
/// and its TTL plus this interval after its last activity.
pub const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Longest text kept in one field of an audit event; longer values are cut (and marked),
/// so no request can make one event large.
pub const AUDIT_FIELD_MAX: usize = 256;
/// Longest `detail` of an audit event.
pub const AUDIT_DETAIL_MAX: usize = 1024;
/// Failures (and anonymous token grants) from one address of one kind within this window
/// are written as one event and a count, not one event each.
pub const AUDIT_AGGREGATE_WINDOW: Duration = Duration::from_secs(60);
/// Events of one aggregated kind from one address written one by one in each window
/// before the rest are only counted: enough to see what a person mistyped.
pub const AUDIT_BURST: u32 = 20;
/// How often the audit log's size is checked against its cap.
pub const AUDIT_SIZE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Most (address, kind) aggregates held at once; beyond that the oldest are written out.
pub const AUDIT_AGGREGATE_MAX: usize = 4096;
/// Default cap on the audit log's size on disk; the oldest segments go first.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Shortest sweep interval honoured, so a zero in the configuration cannot spin.
pub const UPLOAD_SWEEP_MIN: Duration = Duration::from_millis(10);
