//! In-memory backends of the four storage traits, for tests and for embedding pier in a
//! process that keeps nothing on disk.
//!
//! Each honours its trait's contract except durability: everything is gone when the value
//! is dropped. A store's state sits behind one lock, held for the whole of each change, so
//! every change is atomic; that lock is never held across an `.await` (an upload session
//! has a lock of its own for the append that is reading a body into it).

mod access;
mod audit;
mod blob;
mod meta;

pub use access::MemoryAccessStore;
pub use audit::MemoryAuditLog;
pub use blob::MemoryBlobStore;
pub use meta::MemoryMetaStore;

/// The lock of a memory store. A panic while it was held cannot leave a half-done change
/// (each change is computed before it is applied), so poisoning is ignored.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
