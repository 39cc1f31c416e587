//! Periodic offset commits on their own thread, so the consume loop never
//! waits for the group coordinator.
//!
//! A synchronous commit waits for the coordinator. With it unreachable,
//! librdkafka held the call for about 45 s (measured on the mock cluster),
//! and while the loop sat in it nothing was polled: no records, no
//! statistics (so readiness stayed "ready" through an outage), no
//! rebalance, and a stop waited too. It happened whenever an outage began
//! in the second before the gate noticed it, and at every interval while
//! only the coordinator was down. An asynchronous commit does not block,
//! but rust-rdkafka's consumer reports its result to no one (also
//! measured), so the gate could not know what was committed. So the commit
//! stays synchronous and runs here; the loop only asks for one, and asking
//! while one is running or waiting costs nothing (one request is kept: it
//! commits the positions of when it runs, the latest).
//!
//! The commits on revoke and at the stop stay on the consumer's thread:
//! they must finish before the partitions are released or the process
//! ends.

use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use rdkafka::consumer::Consumer;

use super::rebalance::GateConsumer;

pub(crate) struct Committer {
    /// Capacity 1: a waiting request already stands for every later one.
    requests: SyncSender<()>,
}

impl Committer {
    /// Starts the commit thread; it ends when the committer is dropped and
    /// its current commit, if any, has returned.
    pub fn start(consumer: Arc<GateConsumer>) -> std::io::Result<Committer> {
        let (requests, pending) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("smsgate-commit".into())
            .spawn(move || {
                for () in pending {
                    consumer.context().commit_now(&consumer, None, true);
                }
            })?;
        Ok(Committer { requests })
    }

    /// Asks for a commit of every partition's acknowledged prefix; never
    /// waits. False when the commit thread is gone.
    pub fn request(&self) -> bool {
        !matches!(
            self.requests.try_send(()),
            Err(TrySendError::Disconnected(()))
        )
    }
}
