//! Kafka transactions, for `delivery.guarantee = "exactly_once"`.
//!
//! A transaction holds whole decide batches: every output (approved,
//! quarantine, deferred) and changelog record of a batch goes into the
//! transaction that is open while the batch runs ([`Transactions::batch`]
//! is held shared for the batch; a commit holds it exclusively). Committing
//! flushes the producer (so every record sent is acknowledged and the
//! offset tracker has advanced past the inputs of those batches), adds the
//! acknowledged input offsets with the group's metadata
//! (`send_offsets_to_transaction`, KIP-447: a zombie whose group generation
//! is stale cannot commit) and commits. Outputs, changelog and offsets
//! become visible to read_committed readers together, or never.
//!
//! Any failure inside a transaction aborts it. The in-memory state then
//! holds decisions the aborted records carried, and the consumer's position
//! is past their inputs, so the gate is rebuilt in process (as after
//! fencing: state restored from the committed changelog, reading from the
//! committed offsets). A fenced producer writes nothing more: the abort
//! makes every later send a no-op until the rebuild.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;

use crate::gate::delivery::producer::Producer;

/// The open transaction's bookkeeping.
pub struct Transactions {
    /// Shared by a decide batch, exclusive for a commit (see the module doc).
    lock: RwLock<()>,
    /// How long a flush, an offset hand-over or a commit may take.
    pub timeout: Duration,
    /// Records sent since the transaction began: an empty one is not
    /// committed, a large one is committed early.
    records: AtomicUsize,
    /// The transaction was aborted; none is open.
    aborted: AtomicBool,
}

impl Transactions {
    /// Initializes the producer's transactions (fencing an earlier
    /// producer with the same `transactional.id`) and begins the first.
    pub fn start(producer: &Producer, timeout: Duration) -> Result<Transactions, KafkaError> {
        producer.init_transactions(timeout)?;
        producer.begin_transaction()?;
        Ok(Transactions {
            lock: RwLock::new(()),
            timeout,
            records: AtomicUsize::new(0),
            aborted: AtomicBool::new(false),
        })
    }

    /// Held by a decide worker for one batch.
    pub fn batch(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Held by a commit or an abort: no batch is half sent meanwhile.
    pub fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sent(&self) {
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    /// Records sent in the open transaction.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// After a commit: the next transaction starts empty.
    pub fn began(&self) {
        self.records.store(0, Ordering::Relaxed);
    }

    /// After an abort: no transaction is open any more (an abort is done
    /// once; the gate is rebuilt next).
    pub fn finished(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
}
