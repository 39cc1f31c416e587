//! The changelog of partition-local state: the records a
//! [`crate::state::PartitionState`] asks the pipeline to write to the
//! compacted changelog topic, and how it reads them back.
//!
//! Keys are chosen so that compaction keeps exactly what a restore needs:
//! - `dedup/<message_id>` → `{"first_at_ms":…,"outcome":"defer","offset":…}`:
//!   the latest record per message id is its current memory; `offset` (the
//!   input record decided, absent in older records) lets a re-read of that
//!   same record be told from an upstream retry (`state::partition`);
//! - `cap/<16 hex>` → `{"approved_ms":[…]}`: the approval times of one
//!   (recipient, subject) still inside the cap window; the hex is the first
//!   8 bytes of SHA-256 over the pair, so no phone number appears in a key
//!   or value (it is a pseudonym, not encryption: numbers are guessable);
//! - `released/<partition>/<release ms>/<first offset>` → last offset: a
//!   range of the deferred topic already released (`state::deferred`);
//! - a tombstone (no value) deletes a key once its window has passed.
//!
//! The gate writes the `dedup/` and `cap/` entries packed into **batch
//! records** (older batches may also carry entry tombstones), one per worker
//! batch and input partition:
//! `batch/<written ms>/<16 hex>` → `{"at_ms":…,"entries":[["dedup/m-1",{…}],
//! ["cap/…",null],…]}`, applied entry by entry in order at restore. One
//! Kafka record per decision made the changelog as expensive as the output
//! itself (a produce, a delivery report and broker work per event); a batch
//! costs that once per up to 64 decisions. Every entry in a batch written
//! at W is past its window by W + max(dedup, cap window), so the prune then
//! deletes the whole batch with one tombstone of its key. Single `dedup/`
//! and `cap/` records (written by earlier versions) are still restored.
//!
//! Each entry goes to the changelog partition with the same number as the
//! input partition whose state it belongs to.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::decision::Outcome;
use crate::policy::view::Seen;

pub const DEDUP_PREFIX: &str = "dedup/";
pub const CAP_PREFIX: &str = "cap/";
/// Released ranges of the deferred topic (see `state::deferred`).
pub const RELEASED_PREFIX: &str = "released/";
/// Packed `dedup/` and `cap/` entries (see the module notes).
pub const BATCH_PREFIX: &str = "batch/";

/// One record to write to the changelog topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    pub key: Vec<u8>,
    /// `None` is a tombstone: the key's state is gone.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog key is neither dedup/ nor cap/")]
    UnknownKey,
    #[error("changelog value for {key}: {problem}")]
    BadValue { key: String, problem: String },
}

/// Identifies one (recipient, subject) pair without the number in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapKey(pub [u8; 8]);

impl CapKey {
    pub fn new(to: &str, subject: &str) -> CapKey {
        let mut h = Sha256::new();
        h.update(b"smsgate-cap\0");
        h.update(to.as_bytes());
        h.update(b"\0");
        h.update(subject.as_bytes());
        let digest = h.finalize();
        let mut k = [0u8; 8];
        k.copy_from_slice(&digest[..8]);
        CapKey(k)
    }

    /// `cap/<16 hex digits>` in one allocation (`format!` with
    /// `hex::encode` allocated twice; one key per capped approval).
    pub fn changelog_key(&self) -> Vec<u8> {
        [CAP_PREFIX.as_bytes(), &hex16(self.0)].concat()
    }

    fn parse(hex_part: &str) -> Option<CapKey> {
        let bytes = hex::decode(hex_part).ok()?;
        Some(CapKey(bytes.try_into().ok()?))
    }
}

#[derive(Deserialize)]
struct DedupValue {
    first_at_ms: i64,
    outcome: String,
    #[serde(default)]
    offset: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct CapValue {
    approved_ms: Vec<i64>,
}

/// 8 bytes as 16 lowercase hex digits, without allocating (cap keys and
/// batch nonces).
fn hex16(bytes: [u8; 8]) -> [u8; 16] {
    let mut out = [0; 16];
    // 8 bytes are exactly 16 hex digits: this cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut out);
    out
}

pub fn dedup_key(message_id: &str) -> Vec<u8> {
    [DEDUP_PREFIX.as_bytes(), message_id.as_bytes()].concat()
}

/// Written by hand, not through serde: one of these per decision made the
/// changelog a tenth of the decide worker's step.
/// `offset`: the input record this decision was made for, if any.
pub fn dedup_entry(message_id: &str, seen: &Seen, offset: Option<i64>) -> ChangelogEntry {
    let mut ms = itoa::Buffer::new();
    let mut off = itoa::Buffer::new();
    let offset = offset.map(|o| off.format(o).as_bytes());
    let value = [
        br#"{"first_at_ms":"#.as_slice(),
        ms.format(seen.first_at.timestamp_millis()).as_bytes(),
        br#","outcome":""#,
        // A fixed ASCII word: nothing to escape.
        seen.outcome.as_str().as_bytes(),
        br#"""#,
        if offset.is_some() {
            br#","offset":"#.as_slice()
        } else {
            b""
        },
        offset.unwrap_or_default(),
        b"}",
    ]
    .concat();
    ChangelogEntry {
        key: dedup_key(message_id),
        value: Some(value),
    }
}

/// A pair's approval times in the window, in Unix milliseconds; written
/// by hand like [`dedup_entry`] (the same bytes as serde's `CapValue`).
pub fn cap_entry(key: &CapKey, approved_ms: &[i64]) -> ChangelogEntry {
    let mut value = Vec::with_capacity(20 + 14 * approved_ms.len());
    value.extend_from_slice(br#"{"approved_ms":["#);
    let mut ms = itoa::Buffer::new();
    for (i, t) in approved_ms.iter().enumerate() {
        if i > 0 {
            value.push(b',');
        }
        value.extend_from_slice(ms.format(*t).as_bytes());
    }
    value.extend_from_slice(b"]}");
    ChangelogEntry {
        key: key.changelog_key(),
        value: Some(value),
    }
}

pub fn tombstone(key: Vec<u8>) -> ChangelogEntry {
    ChangelogEntry { key, value: None }
}

/// A changelog record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Dedup {
        message_id: String,
        seen: Option<Seen>,
        /// The input record decided (records before this field: `None`).
        offset: Option<i64>,
    },
    Cap {
        key: CapKey,
        approved: Option<Vec<DateTime<Utc>>>,
    },
    /// A `released/` record: restored by `DeferredIndex`, not here.
    Released,
    /// A batch record written at `at` (`entries: None`: its tombstone).
    Batch {
        at: DateTime<Utc>,
        entries: Option<Vec<ChangelogEntry>>,
    },
}

#[derive(Deserialize)]
struct BatchIn<'a> {
    /// Keys as `Cow`: a key with an escape (a `"` in a message id) cannot
    /// be borrowed from the record.
    #[serde(borrow)]
    entries: Vec<(Cow<'a, str>, Option<&'a serde_json::value::RawValue>)>,
}

/// Packs `entries` (`dedup/`/`cap/` entries and tombstones, in order) into
/// one batch record keyed `batch/<at ms>/<nonce as 16 hex>`.
///
/// Entry values are JSON made by this module ([`dedup_entry`],
/// [`cap_entry`], or read back from a batch), so they are copied in as they
/// are instead of being parsed again; keys are escaped as JSON strings.
pub fn batch_entry(entries: &[ChangelogEntry], at: DateTime<Utc>, nonce: u64) -> ChangelogEntry {
    let at_ms = at.timestamp_millis();
    let size: usize = entries
        .iter()
        .map(|e| e.key.len() + e.value.as_ref().map_or(4, Vec::len) + 8)
        .sum();
    let mut value = Vec::with_capacity(size + 32);
    let mut ms = itoa::Buffer::new();
    value.extend_from_slice(br#"{"at_ms":"#);
    value.extend_from_slice(ms.format(at_ms).as_bytes());
    value.extend_from_slice(br#","entries":["#);
    let mut first = true;
    for e in entries {
        let Ok(key) = std::str::from_utf8(&e.key) else {
            continue;
        };
        debug_assert!(
            e.value
                .as_deref()
                .is_none_or(|v| serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok()),
            "changelog entry value is not JSON"
        );
        if !first {
            value.push(b',');
        }
        first = false;
        value.push(b'[');
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut value, key);
        value.push(b',');
        match &e.value {
            Some(v) => value.extend_from_slice(v),
            None => value.extend_from_slice(b"null"),
        }
        value.push(b']');
    }
    value.extend_from_slice(b"]}");
    // `batch/<at ms>/<nonce as 16 hex digits>`, without `format!`.
    let mut key = Vec::with_capacity(BATCH_PREFIX.len() + 38);
    key.extend_from_slice(BATCH_PREFIX.as_bytes());
    key.extend_from_slice(ms.format(at_ms).as_bytes());
    key.push(b'/');
    key.extend_from_slice(&hex16(nonce.to_be_bytes()));
    ChangelogEntry {
        key,
        value: Some(value),
    }
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// Decodes one changelog record; an empty value is a tombstone too.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Change, ChangelogError> {
    let key = std::str::from_utf8(key).map_err(|_| ChangelogError::UnknownKey)?;
    let value = value.filter(|v| !v.is_empty());
    let bad = |problem: String| ChangelogError::BadValue {
        key: key.to_string(),
        problem,
    };
    if let Some(message_id) = key.strip_prefix(DEDUP_PREFIX) {
        let (seen, offset) = match value {
            None => (None, None),
            Some(v) => {
                let d: DedupValue = serde_json::from_slice(v).map_err(|e| bad(e.to_string()))?;
                let seen = Seen {
                    first_at: millis(d.first_at_ms)
                        .ok_or_else(|| bad("first_at_ms out of range".into()))?,
                    outcome: Outcome::parse(&d.outcome)
                        .ok_or_else(|| bad("unknown outcome".into()))?,
                };
                (Some(seen), d.offset)
            }
        };
        return Ok(Change::Dedup {
            message_id: message_id.to_string(),
            seen,
            offset,
        });
    }
    if let Some(hex_part) = key.strip_prefix(CAP_PREFIX) {
        let cap_key = CapKey::parse(hex_part).ok_or_else(|| bad("not 16 hex digits".into()))?;
        let approved = match value {
            None => None,
            Some(v) => {
                let c: CapValue = serde_json::from_slice(v).map_err(|e| bad(e.to_string()))?;
                let times: Option<Vec<_>> = c.approved_ms.into_iter().map(millis).collect();
                Some(times.ok_or_else(|| bad("approved_ms out of range".into()))?)
            }
        };
        return Ok(Change::Cap {
            key: cap_key,
            approved,
        });
    }
    if key.starts_with(RELEASED_PREFIX) {
        return Ok(Change::Released);
    }
    if let Some(rest) = key.strip_prefix(BATCH_PREFIX) {
        let at = rest
            .split('/')
            .next()
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(millis)
            .ok_or_else(|| bad("no write time in the key".into()))?;
        let entries = match value {
            None => None,
            Some(v) => {
                let b: BatchIn<'_> = serde_json::from_slice(v).map_err(|e| bad(e.to_string()))?;
                Some(
                    b.entries
                        .into_iter()
                        .map(|(k, v)| ChangelogEntry {
                            key: k.as_bytes().to_vec(),
                            value: v.map(|raw| raw.get().as_bytes().to_vec()),
                        })
                        .collect(),
                )
            }
        };
        return Ok(Change::Batch { at, entries });
    }
    Err(ChangelogError::UnknownKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// 2026-11-28 02:00 UTC and a memory first seen then with `outcome`.
    fn seen_at(outcome: Outcome) -> (DateTime<Utc>, Seen) {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        let seen = Seen {
            first_at: t,
            outcome,
        };
        (t, seen)
    }

    #[test]
    fn entries_round_trip() {
        let (t, seen) = seen_at(Outcome::Defer);
        let e = dedup_entry("m-1", &seen, Some(42));
        assert_eq!(e.key, b"dedup/m-1");
        assert_eq!(
            decode(&e.key, e.value.as_deref()).unwrap(),
            Change::Dedup {
                message_id: "m-1".into(),
                seen: Some(seen),
                offset: Some(42),
            }
        );
        // Records written before the offset was kept still read.
        let old = dedup_entry("m-1", &seen, None);
        assert_eq!(
            decode(&old.key, old.value.as_deref()).unwrap(),
            Change::Dedup {
                message_id: "m-1".into(),
                seen: Some(seen),
                offset: None,
            }
        );
        let k = CapKey::new("+8613812345678", "sme-loan");
        let e = cap_entry(&k, &[t.timestamp_millis()]);
        assert!(!String::from_utf8_lossy(e.value.as_deref().unwrap()).contains("13812345678"));
        assert_eq!(
            decode(&e.key, e.value.as_deref()).unwrap(),
            Change::Cap {
                key: k,
                approved: Some(vec![t])
            }
        );
        assert_eq!(
            decode(&k.changelog_key(), None).unwrap(),
            Change::Cap {
                key: k,
                approved: None
            }
        );
    }

    #[test]
    fn a_batch_carries_entries_and_tombstones_in_order() {
        let (t, seen) = seen_at(Outcome::Approve);
        let k = CapKey::new("+8613812345678", "sme-loan");
        let entries = vec![
            dedup_entry("m-1", &seen, None),
            cap_entry(&k, &[t.timestamp_millis()]),
            tombstone(dedup_key("m-0")),
        ];
        let b = batch_entry(&entries, t, 0xab);
        assert_eq!(
            String::from_utf8(b.key.clone()).unwrap(),
            format!("batch/{}/00000000000000ab", t.timestamp_millis())
        );
        let Change::Batch {
            at,
            entries: Some(back),
        } = decode(&b.key, b.value.as_deref()).unwrap()
        else {
            panic!("not a batch")
        };
        assert_eq!(at, t);
        assert_eq!(back.len(), 3);
        for (a, b) in entries.iter().zip(&back) {
            assert_eq!(
                decode(&a.key, a.value.as_deref()),
                decode(&b.key, b.value.as_deref())
            );
        }
        assert_eq!(
            decode(&b.key, None).unwrap(),
            Change::Batch {
                at: t,
                entries: None
            }
        );
        assert!(decode(b"batch/x/1", None).is_err());
        assert!(decode(&b.key, Some(b"[1]")).is_err());
    }

    #[test]
    fn hand_written_values_are_the_json_serde_would_write() {
        let (t, seen) = seen_at(Outcome::Reject);
        // Keys that need escaping, and one that is not UTF-8 (left out).
        let ids = [
            "m-1",
            "say \"hi\"",
            "back\\slash",
            "tab\tnl\n\u{1}",
            "短信-7",
        ];
        let mut entries: Vec<_> = ids.iter().map(|id| dedup_entry(id, &seen, None)).collect();
        entries.push(tombstone(dedup_key("m-0")));
        entries.push(ChangelogEntry {
            key: vec![0xff],
            value: None,
        });
        let b = batch_entry(&entries, t, 7);
        let dedup = serde_json::json!({"first_at_ms": t.timestamp_millis(), "outcome": "reject"});
        let mut expected: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!([format!("dedup/{id}"), dedup]))
            .collect();
        expected.push(serde_json::json!(["dedup/m-0", null]));
        let expected = serde_json::json!({"at_ms": t.timestamp_millis(), "entries": expected});
        assert_eq!(
            b.value.as_deref(),
            Some(serde_json::to_vec(&expected).unwrap().as_slice())
        );
        assert_eq!(
            entries[0].value.as_deref(),
            Some(serde_json::to_vec(&dedup).unwrap().as_slice())
        );
        let Ok(Change::Batch {
            entries: Some(back),
            ..
        }) = decode(&b.key, b.value.as_deref())
        else {
            panic!("not a batch")
        };
        assert_eq!(back, entries[..ids.len() + 1]);
        assert_eq!(
            batch_entry(&[], t, 7).value.as_deref(),
            Some(&br#"{"at_ms":1795831200000,"entries":[]}"#[..])
        );
    }

    #[test]
    fn hand_written_cap_entries_and_keys_are_what_serde_and_format_wrote() {
        let key = CapKey([0x00, 0x1f, 0xa0, 0xff, 0x12, 0x34, 0x56, 0x78]);
        assert_eq!(key.changelog_key(), b"cap/001fa0ff12345678");
        assert_eq!(
            key.changelog_key(),
            format!("{CAP_PREFIX}{}", hex::encode(key.0)).into_bytes()
        );
        for times in [&[][..], &[1_795_831_200_000][..], &[-1, 0, i64::MAX]] {
            let serde = serde_json::to_vec(&CapValue {
                approved_ms: times.to_vec(),
            })
            .unwrap();
            assert_eq!(cap_entry(&key, times).value, Some(serde));
        }
        let at = Utc.timestamp_millis_opt(1_795_831_200_000).unwrap();
        for nonce in [0, 7, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(
                batch_entry(&[], at, nonce).key,
                format!("{BATCH_PREFIX}{}/{nonce:016x}", at.timestamp_millis()).into_bytes()
            );
        }
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert_eq!(decode(b"other/x", None), Err(ChangelogError::UnknownKey));
        assert!(decode(b"cap/zz", Some(b"{}")).is_err());
        assert!(decode(b"dedup/m", Some(b"not json")).is_err());
        assert!(decode(&[0xff, 0xfe], None).is_err());
    }
}
