//! The conformance suites of the storage traits, public so that a backend in another crate
//! proves itself against the same checks as pier's own (enable the `testing` feature in
//! its dev-dependencies).
//!
//! Every contract is one function taking a [`Factory`] that makes a new, empty backend;
//! [`blob_store`], [`meta_store`], [`access_store`] and [`audit_log`] run all of a trait's.
//! They panic on the first violation, so they run inside a test:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_store_conforms() {
//!     pier_registry::storage::testing::blob_store(&|| async { Arc::new(MyStore::connect().await) }).await;
//! }
//! ```

use std::sync::Arc;

pub mod access;
pub mod audit;
pub mod blob;
pub mod meta;

use super::{AccessStore, AuditLog, BlobStore, MetaStore};

/// Makes a new, empty backend for one contract: any closure returning a future of an
/// `Arc` of it.
pub trait Factory<S: ?Sized> {
    /// A new backend holding nothing.
    fn make(&self) -> impl Future<Output = Arc<S>>;
}

impl<S: ?Sized, F, Fut> Factory<S> for F
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    fn make(&self) -> impl Future<Output = Arc<S>> {
        self()
    }
}

/// Every [`BlobStore`] contract.
pub async fn blob_store<S: BlobStore + ?Sized>(new: &impl Factory<S>) {
    blob::chunked_upload(new).await;
    blob::digest_mismatch_stores_nothing(new).await;
    blob::broken_body_resumes(new).await;
    blob::abort_ends_session(new).await;
    blob::empty_and_sha512_blobs(new).await;
    blob::duplicate_commit_and_delete(new).await;
    blob::appends_move_last_activity(new).await;
}

/// Every [`MetaStore`] contract.
pub async fn meta_store<S: MetaStore + ?Sized>(new: &impl Factory<S>) {
    meta::blob_links_are_per_repository(new).await;
    meta::manifests_need_linked_blobs(new).await;
    meta::referrers_follow_their_manifests(new).await;
    meta::repositories_listed_and_forgotten(new).await;
    meta::tagged_content_is_not_deleted(new).await;
    meta::upload_records(new).await;
}

/// Every [`AccessStore`] contract.
pub async fn access_store<S: AccessStore + ?Sized>(new: &impl Factory<S>) {
    access::users_projects_members_robots(new).await;
    access::bootstrap_runs_once(new).await;
}

/// Every [`AuditLog`] contract.
pub async fn audit_log<S: AuditLog + ?Sized>(new: &impl Factory<S>) {
    audit::pages_and_filters(new).await;
    audit::purge_before_drops_oldest(new).await;
    audit::purge_to_size_drops_oldest(new).await;
}
