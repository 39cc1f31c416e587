//! librdkafka's in-process mock cluster, with the gate's topics created and
//! a plain producer to seed them. Used by `smsgate demo` and by the
//! in-process fault tests (which also inject errors and take brokers down
//! through [`MockKafka::cluster`]).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Topics;

pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl MockKafka {
    /// Starts `brokers` mock brokers on local ports.
    pub fn start(brokers: i32) -> Result<MockKafka, KafkaError> {
        let cluster = MockCluster::new(brokers)?;
        let bootstrap = cluster.bootstrap_servers();
        Ok(MockKafka { cluster, bootstrap })
    }

    /// `kafka.brokers` for clients of this cluster.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The mock cluster itself, for fault injection.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }

    /// Creates every topic the gate uses, `partitions` each.
    pub fn create_topics(&self, topics: &Topics, partitions: i32) -> Result<(), KafkaError> {
        for t in [
            &topics.outbound,
            &topics.consent,
            &topics.inbound,
            &topics.approved,
            &topics.quarantine,
            &topics.deferred,
        ] {
            self.cluster.create_topic(t, partitions, 1)?;
        }
        // The mock cluster does not serve CreateTopics: the gate cannot
        // create its changelog itself here.
        if let Some(t) = &topics.changelog {
            self.cluster.create_topic(t, partitions, 1)?;
        }
        Ok(())
    }

    /// A producer for seeding input topics.
    pub fn producer(&self) -> Result<Seeder, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .create()?;
        Ok(Seeder { producer })
    }
}

/// Produces records to the mock cluster, waiting when its queue is full.
pub struct Seeder {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl Seeder {
    pub fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
