//! What the producer's delivery callback needs to know about one output
//! record: which input it completes, and whether other deliveries (its
//! changelog entries) must be acknowledged first. Each produced record
//! carries one as its opaque; [`crate::gate::delivery::producer::Flight`] acts on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::gate::delivery::offsets::{Epoch, NO_EPOCH};

/// What the delivery callback needs to know about one output record.
#[derive(Debug)]
pub struct Pending {
    pub partition: i32,
    pub epoch: Epoch,
    pub offset: i64,
    /// When the input was polled, for the end-to-end histogram.
    pub polled_at: Instant,
    /// Deliveries still outstanding for this input record (its output plus
    /// its changelog entries), shared by their `Pending`s: the input offset
    /// counts as acknowledged only when the last of them is. `None`: this
    /// record is the only one.
    pub outstanding: Option<Arc<AtomicUsize>>,
    /// The partition to produce to (changelog records go to the partition
    /// numbered like the input's); `None`: the partitioner picks by key.
    pub to_partition: Option<i32>,
    /// For a changelog batch record: the inputs whose entries it carries
    /// (each also waits for its own output record).
    pub inputs: Vec<Pending>,
    /// Held after a permanent failure: its topic counts as blocked until
    /// it is delivered or dropped ([`super::blocked`]).
    pub held: bool,
}

impl Pending {
    /// The assignment this record is produced for: a batch record's is its
    /// inputs' (it is retried while they are current, or they would never
    /// complete); a lone tombstone has none and is not retried (the prune
    /// after the next restore writes it again).
    pub(super) fn owner_epoch(&self) -> Epoch {
        self.inputs.first().map_or(self.epoch, |p| p.epoch)
    }

    /// A record tied to no input offset (a changelog batch or tombstone of
    /// input partition `partition`), completing `inputs` when acknowledged.
    pub fn changelog(partition: i32, inputs: Vec<Pending>) -> Box<Pending> {
        Box::new(Pending {
            partition,
            epoch: NO_EPOCH,
            offset: -1,
            polled_at: Instant::now(),
            outstanding: None,
            to_partition: Some(partition),
            inputs,
            held: false,
        })
    }

    /// True when this delivery completes its input record.
    pub(super) fn completes_input(&self) -> bool {
        self.outstanding
            .as_ref()
            .is_none_or(|n| n.fetch_sub(1, Ordering::AcqRel) == 1)
    }
}
