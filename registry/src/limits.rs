//! Every limit and tuning constant of the registry, in one place.

/// Largest manifest accepted (distribution's and Harbor's cap): bigger ones answer 413.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest page of tags or repositories one request returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;
/// Chunk size for streaming blobs out of the filesystem: large chunks keep syscalls and
/// per-frame overhead low on multi-gigabyte layers.
pub const READ_CHUNK: usize = 512 * 1024;
/// Chunks a blob download reads ahead of the socket: enough to keep both busy, little
/// enough that a slow client pins at most `READ_AHEAD * READ_CHUNK` bytes.
pub const READ_AHEAD: usize = 4;
/// Bytes gathered from the request body before one write+hash step runs off the runtime.
/// Large enough to amortise the blocking hand-off, small enough to bound memory per upload.
pub const WRITE_BATCH: usize = 1024 * 1024;
/// An upload asks the kernel to start writing back every this many bytes, so the fsync
/// before commit does not stall on gigabytes of dirty pages at once.
pub const WRITEBACK_EVERY: u64 = 64 * 1024 * 1024;
/// sled page-cache budget. Manifests are small; the cache only needs the hot set.
pub const META_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// How long a graceful shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
/// Most of a refused chunk's body read (and discarded) before answering, so the client sees
/// the error rather than a reset connection; beyond this the connection is simply closed.
pub const DRAIN_LIMIT: usize = 8 * 1024 * 1024;
/// Longest time spent draining a refused body.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
