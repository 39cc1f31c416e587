//! The group consumer's context: rebalances, commits, broker health, lag.
//!
//! On revoke (inside librdkafka's rebalance callback, before the partitions
//! are released) the gate stops taking their records — the consumer thread
//! is in here, so nothing new is polled — waits for their in-flight records
//! to be acknowledged (the producer thread keeps delivering meanwhile),
//! re-sending failures, for at most `pipeline.drain_timeout_secs`, commits
//! the acknowledged prefix synchronously, then lets them go. A partition
//! whose assignment was lost (session timed out) is not committed: its new
//! owner already has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, config::RDKafkaLogLevel};

use crate::gate::decide::Workers;
use crate::gate::delivery::producer::{Dispatcher, Flight};
use crate::gate::restorer::Restorer;
use crate::state::Stores;
use crate::telemetry::metrics::Metrics;

pub struct GateContext {
    pub(crate) flight: Arc<Flight>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) metrics: Arc<Metrics>,
    /// `topics.outbound`: the only topic this consumer is subscribed to.
    pub(crate) topic: String,
    pub(crate) drain_timeout: Duration,
    /// Set once start-up succeeded; before that, errors are the caller's.
    pub(crate) started: AtomicBool,
    /// Caps and duplicates: restored on assign, dropped on revoke.
    pub(crate) state: Arc<Stores>,
    /// Restores assigned partitions beside the consumer (paused meanwhile).
    pub(crate) restorer: Restorer,
    /// The decide workers: a revoke hands over their partly filled batches
    /// before draining.
    pub(crate) workers: Arc<Workers>,
}

pub type GateConsumer = BaseConsumer<GateContext>;

impl GateContext {
    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    /// Commits the acknowledged prefix of `partitions` (all when `None`)
    /// synchronously: every commit interval (on the commit thread,
    /// `crate::gate::committer`), on revoke and at shutdown. (rust-rdkafka's
    /// consumer reports manual asynchronous commits to no one, so their
    /// result would be unknown.)
    /// `periodic` commits are retried at the next interval, so their
    /// failures are logged at `debug`; the last commit before a revoke or a
    /// stop warns.
    pub(crate) fn commit_now(
        &self,
        consumer: &GateConsumer,
        partitions: Option<&[i32]>,
        periodic: bool,
    ) {
        if self.dispatcher.transactions().is_some() {
            return self.commit_transaction(consumer);
        }
        let mut tpl = TopicPartitionList::new();
        let positions: Vec<(i32, i64)> = self
            .flight
            .to_commit()
            .into_iter()
            .filter(|(p, _)| partitions.is_none_or(|ps| ps.contains(p)))
            .collect();
        if positions.is_empty() {
            return;
        }
        if !self.metrics.is_broker_up() {
            // A synchronous commit would block until the coordinator is back.
            self.metrics.commit_failed();
            if periodic {
                tracing::debug!("broker unreachable: commit postponed");
            } else {
                tracing::warn!(
                    "broker unreachable: offsets not committed; the records will be read again"
                );
            }
            return;
        }
        for (p, o) in &positions {
            let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for (p, o) in positions {
                    self.flight.committed(p, o);
                }
            }
            Err(e) if periodic => {
                self.metrics.commit_failed();
                tracing::debug!(error = %e, "offset commit failed; retried at the next interval");
            }
            Err(e) => {
                self.metrics.commit_failed();
                tracing::warn!(error = %e, "offset commit failed; the records will be read again");
            }
        }
    }

    /// `exactly_once`: commits the open transaction with the acknowledged
    /// input offsets of every partition (see `delivery::transaction`), or
    /// aborts it when anything failed; then begins the next one.
    fn commit_transaction(&self, consumer: &GateConsumer) {
        let Some(txn) = self.dispatcher.transactions() else {
            return;
        };
        let _exclusive = txn.exclusive();
        let producer = self.dispatcher.producer();
        if let Some(why) = self.flight.aborted() {
            return self.abort_transaction(&why);
        }
        if txn.records() == 0 && self.flight.to_commit().is_empty() {
            return;
        }
        let started = Instant::now();
        let committed = (|| -> Result<Vec<(i32, i64)>, String> {
            // Every record sent is acknowledged: the offsets advance past
            // the inputs of every batch in this transaction.
            if !self.dispatcher.wait_delivered(txn.timeout) {
                return Err(format!("records not acknowledged within {:?}", txn.timeout));
            }
            let flushed = started.elapsed();
            if let Some(why) = self.flight.aborted() {
                return Err(why);
            }
            let positions = self.flight.to_commit();
            if !positions.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for (p, o) in &positions {
                    let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
                }
                let group = consumer
                    .group_metadata()
                    .ok_or_else(|| "no consumer group metadata".to_string())?;
                producer
                    .send_offsets_to_transaction(&tpl, &group, txn.timeout)
                    .map_err(|e| format!("offsets: {e}"))?;
            }
            let offsets = started.elapsed();
            producer
                .commit_transaction(txn.timeout)
                .map_err(|e| format!("commit: {e}"))?;
            tracing::debug!(?flushed, ?offsets, total = ?started.elapsed(), "transaction committed");
            Ok(positions)
        })();
        match committed {
            Ok(positions) => {
                for (p, o) in positions {
                    self.flight.committed(p, o);
                }
                self.metrics.transaction_committed(started.elapsed());
                self.metrics.delivery_blocked(0);
                txn.began();
                if let Err(e) = producer.begin_transaction() {
                    self.flight.abort(format!("begin: {e}"));
                }
            }
            Err(why) => {
                self.flight.abort(why.clone());
                self.abort_transaction(&why);
            }
        }
    }

    /// Aborts the open transaction: none of its records becomes visible to
    /// read_committed readers. The gate is rebuilt next (the intake sees
    /// `Flight::aborted`).
    fn abort_transaction(&self, why: &str) {
        let Some(txn) = self.dispatcher.transactions() else {
            return;
        };
        if txn.is_finished() {
            return;
        }
        tracing::warn!(
            reason = why,
            "transaction aborted; rebuilding the gate, which reads again from the committed offsets"
        );
        // A fenced or fatally failed producer cannot abort; its transaction
        // is aborted by the broker (fencing, or the transaction timeout).
        if let Err(e) = self.dispatcher.producer().abort_transaction(txn.timeout) {
            tracing::debug!(error = %e, "abort_transaction");
        }
        self.metrics.transaction_aborted();
        txn.finished();
    }

    /// `lost`: the partitions are gone without a revoke (a rebalance
    /// error), as when librdkafka says the assignment was lost.
    fn on_revoke(&self, consumer: &GateConsumer, tpl: &TopicPartitionList, lost: bool) {
        let partitions = self.partitions_of(tpl);
        if let Err(e) = self.workers.flush() {
            tracing::error!(error = %e, "cannot hand records to a decide worker");
        }
        let lost = lost || consumer.assignment_lost();
        if lost && self.dispatcher.transactions().is_some() {
            // The open transaction holds records of partitions another
            // member now owns: it must not commit.
            self.flight
                .abort("the group assignment was lost".to_string());
            self.commit_transaction(consumer);
        } else if lost {
            tracing::warn!(
                ?partitions,
                "assignment lost; partitions released without commit"
            );
        } else {
            let deadline = Instant::now() + self.drain_timeout;
            let drained = self.dispatcher.drain(Some(&partitions), deadline, || {});
            self.commit_now(consumer, Some(&partitions), false);
            tracing::info!(?partitions, drained, "partitions revoked");
        }
        self.restorer.revoked(&partitions);
        for p in partitions {
            self.flight.revoke(p);
            // Its changelog (acknowledged before the commit above) now
            // belongs to the next owner.
            self.state.revoke(p);
            self.metrics.partition_released(p);
        }
    }

    fn on_assign(&self, consumer: &GateConsumer, tpl: &TopicPartitionList) {
        self.metrics.rebalanced("assign");
        let partitions = self.partitions_of(tpl);
        // Paused until their state is restored, on the restore thread; the
        // consumer keeps polling meanwhile (see `crate::gate::restorer`).
        // No placeholder state: until the restored one is installed, a late
        // decision from an earlier assignment finds none and is not made.
        for p in &partitions {
            self.state.revoke(*p);
            self.flight.assign(*p);
        }
        self.restorer.assigned(consumer, &partitions);
        tracing::info!(?partitions, "partitions assigned; restoring their state");
    }
}

impl ClientContext for GateContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::gate::clients::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if crate::gate::clients::is_all_brokers_down(&error) {
            if self.metrics.is_broker_up() && self.started.load(Ordering::Relaxed) {
                tracing::warn!(reason, "all brokers are down; retrying");
            }
            self.metrics.broker_reachable(false);
        } else {
            crate::gate::clients::log_error("consumer", &error, reason);
        }
    }

    fn stats(&self, stats: Statistics) {
        let learned: Vec<_> = stats.brokers.values().filter(|b| b.nodeid >= 0).collect();
        let up = if learned.is_empty() {
            stats.brokers.values().any(|b| b.state == "UP")
        } else {
            learned.iter().any(|b| b.state == "UP")
        };
        if up != self.metrics.is_broker_up() && self.started.load(Ordering::Relaxed) {
            if up {
                tracing::info!("broker reachable again");
            } else {
                tracing::warn!("no broker reachable; retrying");
            }
        }
        self.metrics.broker_reachable(up);
        if let Some(topic) = stats.topics.get(&self.topic) {
            for p in topic.partitions.values() {
                if p.partition < 0 || !self.flight.is_assigned(p.partition) || p.hi_offset < 0 {
                    continue;
                }
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.committed_offset
                };
                if position >= 0 {
                    self.metrics
                        .lag(p.partition, (p.hi_offset - position).max(0));
                }
            }
        }
    }
}

impl ConsumerContext for GateContext {
    fn pre_rebalance(&self, consumer: &GateConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.metrics.rebalanced("revoke");
                self.on_revoke(consumer, tpl, false)
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                // Under the eager protocol rust-rdkafka unassigns everything
                // after this callback: release every partition as lost
                // (nothing of them decided or committed any more) before.
                // (Cooperative: it unassigns a list this variant does not
                // carry; the next rebalance says what is left.)
                self.metrics.rebalanced("error");
                tracing::warn!(error = %e, "rebalance error");
                if !matches!(
                    consumer.rebalance_protocol(),
                    RebalanceProtocol::Cooperative
                ) {
                    match consumer.assignment() {
                        Ok(tpl) => self.on_revoke(consumer, &tpl, true),
                        Err(e) => {
                            tracing::error!(error = %e, "assignment unknown after a rebalance error")
                        }
                    }
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &GateConsumer, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.on_assign(consumer, tpl);
        }
    }
}
