//! State the policy reads: consent history, approved-marketing counts for
//! caps, and decided message ids for duplicates.
//!
//! - `memory` is the simple single-owner store used by `check` and as the
//!   reference the compact stores are tested against.
//! - `consent` is the compact consent table every instance materializes
//!   from the consent topic.

pub mod consent;
pub mod memory;

pub use consent::ConsentTable;
pub use memory::MemoryState;
