//! Why a delivery failed, and which output topics cannot take records now.
//!
//! A failed record is always produced again (never skipped: the offset
//! tracker holds the commit before it). Most failures pass by themselves
//! (a broker restart, a timeout); some last until an operator acts: the
//! gate may not write to the topic (an ACL), the topic does not exist, the
//! record is larger than the broker or client accepts. While a record that
//! failed like that waits, its topic is *blocked*: `/readyz` answers 503,
//! `smsgate_delivery_blocked` counts the topic, and an ERROR line names
//! the topic and the error. The block lifts when the record is delivered
//! (the operator granted the ACL, created the topic, raised the limit) or
//! dropped with its partition's revocation (the next owner re-reads it).

use std::collections::BTreeMap;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::telemetry::metrics::FAILURE_KINDS;

/// What kind of failure a delivery had: the `kind` label of
/// `smsgate_produce_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Topic or cluster authorization failed (an ACL is missing).
    Authorization,
    /// The topic or partition does not exist.
    UnknownTopic,
    /// The record is larger than `message.max.bytes` or the topic's
    /// `max.message.bytes`.
    TooLarge,
    /// Not acknowledged within `message.timeout.ms`.
    Timeout,
    /// Anything else (usually transient: leader moves, broker restarts).
    Other,
}

impl FailureKind {
    pub fn of(error: &KafkaError) -> FailureKind {
        use RDKafkaErrorCode::*;
        match error.rdkafka_error_code() {
            Some(
                TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | TransactionalIdAuthorizationFailed,
            ) => FailureKind::Authorization,
            Some(UnknownTopicOrPartition | UnknownTopic | UnknownTopicId | UnknownPartition) => {
                FailureKind::UnknownTopic
            }
            Some(MessageSizeTooLarge | InvalidMessageSize | MessageBatchTooLarge) => {
                FailureKind::TooLarge
            }
            Some(MessageTimedOut | RequestTimedOut) => FailureKind::Timeout,
            _ => FailureKind::Other,
        }
    }

    /// The kind named in a librdkafka transaction error line, e.g.
    /// "… Topic authorization failed (TOPIC_AUTHORIZATION_FAILED)".
    pub fn of_text(text: &str) -> Option<FailureKind> {
        if text.contains("AUTHORIZATION_FAILED") {
            Some(FailureKind::Authorization)
        } else if text.contains("UNKNOWN_TOPIC") {
            Some(FailureKind::UnknownTopic)
        } else if text.contains("TOO_LARGE") {
            Some(FailureKind::TooLarge)
        } else {
            None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Authorization => FAILURE_KINDS[0],
            FailureKind::UnknownTopic => FAILURE_KINDS[1],
            FailureKind::TooLarge => FAILURE_KINDS[2],
            FailureKind::Timeout => FAILURE_KINDS[3],
            FailureKind::Other => FAILURE_KINDS[4],
        }
    }

    /// True for failures that last until an operator fixes their cause.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureKind::Authorization | FailureKind::UnknownTopic | FailureKind::TooLarge
        )
    }
}

/// Output topics with records held after a permanent failure.
#[derive(Debug, Default)]
pub struct Blocked {
    /// Held records per topic, and the kind of the latest failure.
    topics: BTreeMap<String, (usize, FailureKind)>,
}

impl Blocked {
    /// One more record of `topic` held after a permanent failure.
    pub fn hold(&mut self, topic: &str, kind: FailureKind) {
        let entry = self.topics.entry(topic.to_string()).or_insert((0, kind));
        entry.0 += 1;
        entry.1 = kind;
    }

    /// A held record of `topic` was delivered or dropped.
    pub fn release(&mut self, topic: &str) {
        if let Some(entry) = self.topics.get_mut(topic) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                self.topics.remove(topic);
            }
        }
    }

    /// How many topics are blocked.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce_error(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn a_missing_acl_a_missing_topic_and_a_record_too_large_are_permanent() {
        for (code, label) in [
            (RDKafkaErrorCode::TopicAuthorizationFailed, "authorization"),
            (RDKafkaErrorCode::UnknownTopicOrPartition, "unknown_topic"),
            (RDKafkaErrorCode::UnknownTopic, "unknown_topic"),
            (RDKafkaErrorCode::MessageSizeTooLarge, "too_large"),
        ] {
            let kind = FailureKind::of(&produce_error(code));
            assert_eq!(kind.label(), label, "{code:?}");
            assert!(kind.is_permanent(), "{code:?}");
        }
    }

    #[test]
    fn a_failed_transaction_names_its_cause_in_text() {
        let line = "Current transaction failed in state InTransaction: Failed to add partition(s) \
                    to transaction on broker TxnCoordinator/1: Broker: Topic authorization failed \
                    (after 5 ms) (TOPIC_AUTHORIZATION_FAILED)";
        assert_eq!(FailureKind::of_text(line), Some(FailureKind::Authorization));
        assert_eq!(
            FailureKind::of_text("(UNKNOWN_TOPIC_OR_PART)"),
            Some(FailureKind::UnknownTopic)
        );
        assert_eq!(
            FailureKind::of_text("(MSG_SIZE_TOO_LARGE)"),
            Some(FailureKind::TooLarge)
        );
        assert_eq!(FailureKind::of_text("(REQUEST_TIMED_OUT)"), None);
    }

    #[test]
    fn timeouts_and_leader_moves_pass_by_themselves() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::AllBrokersDown,
        ] {
            assert!(
                !FailureKind::of(&produce_error(code)).is_permanent(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_topic_stays_blocked_until_its_last_held_record_is_released() {
        let mut b = Blocked::default();
        b.hold("sms.approved", FailureKind::Authorization);
        b.hold("sms.approved", FailureKind::Authorization);
        b.release("sms.approved");
        assert_eq!(b.len(), 1);
        b.release("sms.approved");
        assert!(b.is_empty());
        b.release("sms.approved");
        assert!(b.is_empty());
    }
}
