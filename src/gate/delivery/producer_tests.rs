//! Unit tests of [`super`]: retries, ordered completion, blocked topics.
use super::*;
use rdkafka::message::OwnedMessage;

fn failed_output(partition: i32) -> OwnedMessage {
    OwnedMessage::new(
        Some(b"value".to_vec()),
        Some(b"+8613800000000".to_vec()),
        "sms.approved".into(),
        rdkafka::Timestamp::NotAvailable,
        partition,
        -1,
        None,
    )
}

fn pending(partition: i32, epoch: Epoch, offset: i64) -> Box<Pending> {
    Box::new(Pending {
        partition,
        epoch,
        offset,
        polled_at: Instant::now(),
        outstanding: None,
        to_partition: None,
        inputs: Vec::new(),
        held: false,
    })
}

fn timeout() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
}

#[test]
fn a_failed_delivery_is_queued_again_after_the_backoff_and_holds_the_commit() {
    let f = Flight::new(Arc::new(Metrics::new()), Duration::from_millis(30));
    let e = f.assign(0);
    f.take(0, 7);
    f.take(0, 8);
    f.on_delivered(&pending(0, e, 8), "sms.approved");
    f.on_failed(pending(0, e, 7), &timeout(), failed_output(0));
    assert_eq!(f.to_commit(), vec![(0, 7)], "7 is not acknowledged yet");
    assert!(f.take_due_retries().is_empty(), "not before the backoff");
    std::thread::sleep(Duration::from_millis(40));
    let due = f.take_due_retries();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payload.as_deref(), Some(&b"value"[..]));
    assert_eq!(due[0].key.as_deref(), Some(&b"+8613800000000"[..]));
    assert_eq!(due[0].pending.offset, 7);
    f.on_delivered(&due[0].pending, "sms.approved");
    assert_eq!(f.to_commit(), vec![(0, 9)]);
}

#[test]
fn a_missing_acl_blocks_the_topic_until_the_held_record_is_delivered() {
    let metrics = Arc::new(Metrics::new());
    metrics.consent_caught_up();
    let f = Flight::new(metrics.clone(), Duration::ZERO);
    let e = f.assign(0);
    f.take(0, 7);
    let denied = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
    f.on_failed(pending(0, e, 7), &denied, failed_output(0));
    assert!(!metrics.is_ready(), "blocked: not ready");
    let mut due = f.take_due_retries();
    // Failing again on the retry still counts the record once.
    f.on_failed(due.remove(0).pending, &denied, failed_output(0));
    let due = f.take_due_retries();
    assert_eq!(f.to_commit(), vec![(0, 7)], "nothing committed past it");
    f.on_delivered(&due[0].pending, "sms.approved");
    assert!(metrics.is_ready(), "delivered: ready again");
    assert_eq!(f.to_commit(), vec![(0, 8)]);
}

#[test]
fn a_revoked_partition_releases_its_held_records() {
    let metrics = Arc::new(Metrics::new());
    metrics.consent_caught_up();
    let f = Flight::new(metrics.clone(), Duration::ZERO);
    let e = f.assign(0);
    f.take(0, 7);
    let missing = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
    f.on_failed(pending(0, e, 7), &missing, failed_output(0));
    assert!(!metrics.is_ready());
    f.revoke(0);
    assert!(metrics.is_ready(), "the next owner re-reads the record");
}

#[test]
fn a_failed_changelog_batch_is_retried_and_completes_its_inputs() {
    let f = Flight::new(Arc::new(Metrics::new()), Duration::ZERO);
    let e = f.assign(0);
    f.take(0, 7);
    let shared = Arc::new(AtomicUsize::new(2));
    let mut input = *pending(0, e, 7);
    input.outstanding = Some(shared.clone());
    let mut output = *pending(0, e, 7);
    output.outstanding = Some(shared);
    f.on_delivered(&output, "sms.approved");
    assert_eq!(
        f.to_commit(),
        vec![(0, 7)],
        "7 waits for its changelog batch"
    );
    let batch = Pending::changelog(0, vec![input]);
    f.on_failed(batch, &timeout(), failed_output(0));
    let due = f.take_due_retries();
    assert_eq!(due.len(), 1, "a batch carrying inputs is produced again");
    f.on_delivered(&due[0].pending, "smsgate.gate-state");
    assert_eq!(f.to_commit(), vec![(0, 8)]);
}

#[test]
fn a_failure_for_a_revoked_partition_is_left_to_the_next_owner() {
    let f = Flight::new(Arc::new(Metrics::new()), Duration::ZERO);
    let e = f.assign(3);
    f.take(3, 1);
    f.revoke(3);
    f.on_failed(pending(3, e, 1), &timeout(), failed_output(3));
    assert!(f.take_due_retries().is_empty());
    assert_eq!(f.pending_total(), 0);
}

fn shared_pending(outstanding: Option<Arc<AtomicUsize>>) -> Pending {
    Pending {
        partition: 0,
        epoch: 1,
        offset: 7,
        polled_at: Instant::now(),
        outstanding,
        to_partition: None,
        inputs: Vec::new(),
        held: false,
    }
}

#[test]
fn an_input_completes_only_with_its_output_and_every_changelog_entry() {
    let shared = Arc::new(AtomicUsize::new(3));
    let (output, dedup, cap) = (
        shared_pending(Some(shared.clone())),
        shared_pending(Some(shared.clone())),
        shared_pending(Some(shared)),
    );
    assert!(!dedup.completes_input());
    assert!(!output.completes_input());
    assert!(
        cap.completes_input(),
        "the last acknowledgement completes it"
    );
    assert!(
        shared_pending(None).completes_input(),
        "a lone output completes at once"
    );
}
