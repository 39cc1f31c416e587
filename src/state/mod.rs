//! State the policy reads: consent history, approved-marketing counts for
//! caps, and decided message ids for duplicates.
//!
//! - `memory` is the simple single-owner store used by `check` and as the
//!   reference the compact stores are tested against.
//! - `consent` is the compact consent table every instance materializes
//!   from the consent topic.
//! - `caps` is a partition's memory of approved marketing for caps, and
//!   `dedup` its memory of decided message ids.
//! - `partition` holds one input partition's caps and duplicates, and
//!   `changelog` the records that persist them.
//! - `catchup` tracks restore progress for readiness.
//! - `stores` puts the consent table and the partition states behind one
//!   type: what the pipeline locks and decides against.
//! - `deferred` indexes held messages on the deferred topic for release.

pub mod caps;
pub mod catchup;
pub mod changelog;
pub mod consent;
pub mod dedup;
pub mod deferred;
pub mod memory;
pub mod partition;
pub mod stores;

/// Hasher of the in-memory maps whose keys are compared in full (a
/// collision costs time, never a wrong answer): fast and randomly seeded.
/// std's SipHash cost about 1 % of the decide step.
pub type FastHash = foldhash::fast::RandomState;

pub use consent::ConsentTable;
pub use deferred::DeferredIndex;
pub use memory::MemoryState;
pub use partition::{GateView, PartitionState};
pub use stores::{Decided, Stores};
