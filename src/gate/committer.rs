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
//! The last commit at a stop runs here too, after the drain, and the stop
//! waits for it only so long ([`Committer::finish`]). The commit on revoke
//! stays on the consumer's thread, inside the rebalance callback: it must
//! finish before the partitions are released (and the coordinator, which
//! is running the rebalance, is reachable then).

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use rdkafka::consumer::Consumer;

use crate::gate::consumer::GateConsumer;

pub(crate) struct Committer {
    /// Capacity 1: a waiting request already stands for every later one.
    requests: SyncSender<()>,
    /// Disconnected when the thread has ended (and dropped its consumer
    /// handle, so the consumer closes on the thread that drops it last).
    ended: Receiver<()>,
}

impl Committer {
    /// Starts the commit thread; it ends when the committer is stopped and
    /// its current commit, if any, has returned.
    pub fn start(consumer: Arc<GateConsumer>) -> std::io::Result<Committer> {
        let (requests, pending) = mpsc::sync_channel::<()>(1);
        let (ending, ended) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("smsgate-commit".into())
            .spawn(move || {
                let _ending = ending;
                for () in pending {
                    consumer.context().commit_now(&consumer, None, true);
                }
                // Stopped (after the drain): the last commit.
                consumer.context().commit_now(&consumer, None, false);
                drop(consumer);
            })?;
        Ok(Committer { requests, ended })
    }

    /// Asks for a commit of every partition's acknowledged prefix; never
    /// waits. False when the commit thread is gone.
    pub fn request(&self) -> bool {
        !matches!(
            self.requests.try_send(()),
            Err(TrySendError::Disconnected(()))
        )
    }

    /// After the drain: ends the thread with one last commit of every
    /// acknowledged prefix, waiting at most `wait` for it. False when it
    /// has not finished by then (a commit waiting for an unreachable
    /// coordinator finishes alone; the records past the committed offsets
    /// are read again after a restart and rejected as `duplicate`).
    pub fn finish(self, wait: Duration) -> bool {
        drop(self.requests);
        matches!(
            self.ended.recv_timeout(wait),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}
