//! Restore progress for readiness: a store is restored once every
//! partition it reads has been consumed up to the high watermark seen when
//! the restore began. `/readyz` turns ready only when the consent table
//! and every assigned partition's changelog are caught up.

use std::collections::HashMap;

/// Progress of one restore (the consent topic, or one changelog partition).
#[derive(Debug, Clone, Default)]
pub struct CatchUp {
    /// Offset each partition must reach (its high watermark at start).
    target: HashMap<i32, i64>,
    /// Next offset to read per partition (last offset read + 1).
    position: HashMap<i32, i64>,
}

impl CatchUp {
    pub fn new() -> CatchUp {
        CatchUp::default()
    }

    /// Sets a partition's target to its high watermark (one past its last
    /// record); an empty partition (`low == high`) is caught up at once.
    pub fn target(&mut self, partition: i32, low: i64, high: i64) {
        self.target.insert(partition, high);
        self.position.entry(partition).or_insert(low);
    }

    /// Notes a record read at `offset`.
    pub fn observe(&mut self, partition: i32, offset: i64) {
        let p = self.position.entry(partition).or_insert(offset + 1);
        *p = (*p).max(offset + 1);
    }

    /// Notes that the consumer reached the end of a partition (librdkafka's
    /// partition EOF with `enable.partition.eof=true`, or its position at
    /// or past the target). Needed because the last offsets of a compacted
    /// or transactional topic may hold no record to observe.
    pub fn reached_end(&mut self, partition: i32) {
        if let Some(high) = self.target.get(&partition) {
            let p = self.position.entry(partition).or_insert(*high);
            *p = (*p).max(*high);
        }
    }

    /// True when every targeted partition reached its target.
    pub fn is_caught_up(&self) -> bool {
        self.target
            .iter()
            .all(|(p, high)| self.position.get(p).is_some_and(|pos| pos >= high))
    }

    /// Records still to read before caught up (a gauge: restore lag).
    pub fn remaining(&self) -> i64 {
        self.target
            .iter()
            .map(|(p, high)| (high - self.position.get(p).copied().unwrap_or(0)).max(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_when_every_partition_reaches_its_start_watermark() {
        let mut c = CatchUp::new();
        c.target(0, 0, 3);
        c.target(1, 5, 5);
        assert!(!c.is_caught_up());
        assert_eq!(c.remaining(), 3);
        c.observe(0, 0);
        c.observe(0, 1);
        assert!(!c.is_caught_up());
        c.observe(0, 2);
        assert!(c.is_caught_up());
        assert_eq!(c.remaining(), 0);
        // Records arriving later do not make it un-ready.
        c.observe(0, 9);
        assert!(c.is_caught_up());
    }

    #[test]
    fn a_partition_end_without_a_last_record_counts() {
        let mut c = CatchUp::new();
        c.target(0, 0, 10);
        c.observe(0, 7);
        assert!(!c.is_caught_up());
        c.reached_end(0);
        assert!(c.is_caught_up());
    }

    #[test]
    fn nothing_to_read_is_caught_up() {
        assert!(CatchUp::new().is_caught_up());
    }
}
