//! The state the pipeline decides against, behind one small type: the
//! durable [`Stores`] (compact consent table plus one caps-and-duplicates
//! state per assigned input partition) under one lock, so deciding and
//! recording happen together and two events with the same `message_id` can
//! never both pass as first.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::consent::ConsentError;
use crate::policy::{Origin, Policy};
use crate::state::changelog::{ChangelogEntry, ChangelogError};
use crate::state::consent::Applied;
use crate::state::{Decided, Stores};

#[derive(Debug)]
pub struct GateState {
    inner: Mutex<Stores>,
}

impl GateState {
    pub fn new(policy: &Policy) -> GateState {
        GateState {
            inner: Mutex::new(Stores::for_policy(policy)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stores> {
        // A panic elsewhere cannot leave the stores half-updated in a way
        // that matters more than stopping the gate would.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parses and decides one record value of input `partition`, records the
    /// decision's state effects (dedup, caps) and returns the changelog
    /// entries to write before the input offset is committed.
    pub fn decide(
        &self,
        policy: &Policy,
        partition: i32,
        bytes: &[u8],
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Decided {
        self.lock().decide(policy, partition, bytes, origin, now)
    }

    /// Applies one consent record value; returns what `apply` did and the
    /// number of recipients known after.
    pub fn apply_consent_bytes(&self, value: &[u8]) -> Result<(Applied, usize), ConsentError> {
        let mut s = self.lock();
        let applied = s.apply_consent_bytes(value)?;
        Ok((applied, s.consent().recipients()))
    }

    /// Starts input partition `partition` empty (restore follows).
    pub fn assign(&self, partition: i32) {
        self.lock().assign(partition)
    }

    /// Applies one changelog record of `partition` (read in log order).
    pub fn restore(
        &self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        self.lock().restore(partition, key, value)
    }

    pub fn revoke(&self, partition: i32) {
        self.lock().revoke(partition)
    }

    /// Forgets dedup and cap entries past their windows; returns the
    /// tombstones to write, per input partition.
    pub fn prune(&self, now: DateTime<Utc>) -> Vec<(i32, ChangelogEntry)> {
        self.lock().prune(now)
    }

    /// (remembered message ids, cap keys) over the assigned partitions.
    pub fn sizes(&self) -> (usize, usize) {
        self.lock().sizes()
    }
}
