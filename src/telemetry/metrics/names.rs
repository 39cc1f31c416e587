//! Metric names, in one place. The pipeline registers and updates them
//! through the intent-named methods of [`super::Metrics`]; dashboards and
//! alerts use these names. Labels are bounded: outcome, reason code, topic
//! name (from configuration), partition number, a fixed set of results.

pub const EVENTS_CONSUMED: &str = "smsgate_events_consumed_total"; // {topic}
pub const DECISIONS: &str = "smsgate_decisions_total"; // {outcome}
pub const REASONS: &str = "smsgate_reasons_total"; // {code}
pub const PRODUCED: &str = "smsgate_produced_total"; // {topic}
pub const PRODUCE_ERRORS: &str = "smsgate_produce_errors_total"; // {topic, kind}
pub const TRANSACTIONS: &str = "smsgate_transactions_total"; // {result="committed"|"aborted"}
pub const TRANSACTION_SECONDS: &str = "smsgate_transaction_seconds"; // histogram, one commit
pub const DELIVERY_BLOCKED: &str = "smsgate_delivery_blocked"; // gauge, output topics held by a permanent failure
pub const PROCESSING_SECONDS: &str = "smsgate_processing_seconds"; // histogram, poll → decision
pub const END_TO_END_SECONDS: &str = "smsgate_end_to_end_seconds"; // histogram, poll → delivery ack
pub const IN_FLIGHT: &str = "smsgate_in_flight"; // gauge
pub const CONSUMER_LAG: &str = "smsgate_consumer_lag"; // gauge {partition}
pub const COMMITS: &str = "smsgate_commits_total"; // {result}
pub const REBALANCES: &str = "smsgate_rebalances_total"; // {kind}
pub const CONSENT_RECORDS: &str = "smsgate_consent_records_total"; // counter, applied
pub const CONSENT_IGNORED: &str = "smsgate_consent_ignored_total"; // {reason}
pub const CONSENT_RECIPIENTS: &str = "smsgate_consent_recipients"; // gauge
pub const POLICY_INFO: &str = "smsgate_policy_info"; // gauge = 1 {version}
pub const POLICY_RELOAD_FAILURES: &str = "smsgate_policy_reload_failures_total"; // counter, SIGHUP reloads refused or failed
pub const READY: &str = "smsgate_ready"; // gauge 0/1
pub const BROKER_UP: &str = "smsgate_broker_up"; // gauge 0/1
pub const OPTOUT_LATENCY_SECONDS: &str = "smsgate_optout_latency_seconds"; // histogram
pub const REPLIES: &str = "smsgate_replies_total"; // counter {outcome="opt_out"|"not_opt_out"|"invalid"}, forwarder
pub const REPLY_IN_PROGRESS_SINCE: &str = "smsgate_reply_in_progress_since_seconds"; // gauge, Unix time, 0 = idle
pub const INBOUND_LAG: &str = "smsgate_inbound_lag"; // gauge, replies waiting behind those received
pub const STATE_RESTORE_SECONDS: &str = "smsgate_state_restore_seconds"; // histogram {store}
pub const DEFERRED_HELD: &str = "smsgate_deferred_held"; // gauge
pub const STATE_ENTRIES: &str = "smsgate_state_entries"; // gauge {store="dedup"|"caps"}, assigned partitions
pub const DEDUP_EVICTED: &str = "smsgate_dedup_evicted_total"; // counter, ids forgotten before their window (memory bound)
pub const NON_RECIPIENT_KEYS: &str = "smsgate_non_recipient_keys_total";
pub const COMMITTED_OFFSET: &str = "smsgate_committed_offset"; // gauge {partition}
pub const PRODUCE_RETRIES: &str = "smsgate_produce_retries_total"; // {topic}
pub const CONSUMER_ERRORS: &str = "smsgate_consumer_errors_total"; // {kind}
pub const HTTP_CONNECTIONS_REFUSED: &str = "smsgate_http_connections_refused_total"; // counter, metrics port at its connection cap
pub const FEED_DOWN: &str = "smsgate_feed_down"; // gauge {feed="replies"|"release"}, 1 while a side feed that should run has ended
pub const RELEASE_OVERDUE_SECONDS: &str = "smsgate_release_overdue_seconds"; // gauge, oldest due deferred range past its release time
pub const RELEASE_FAILURES: &str = "smsgate_release_failures_total"; // counter, failed hand-backs (retried)
pub const THREAD_CPU_SECONDS: &str = "smsgate_thread_cpu_seconds_total"; // counter {thread}, this process's threads by name
