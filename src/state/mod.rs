//! State the policy reads: consent history, approved-marketing counts for
//! caps, and decided message ids for duplicates.
//!
//! `memory` is the simple single-owner store used by `check` and as the
//! in-process store of the gate.

pub mod memory;

pub use memory::MemoryState;
