//! Restores a consent table from 1M consent records (JSON exactly as on the
//! consent topic) and prints restore time, records/s, table size and bytes
//! per recipient.
//!
//! Memory is measured two ways: a counting global allocator (net live heap
//! bytes the restore left behind, i.e. the table itself, including
//! allocator-visible sizes of every allocation) and the table's own
//! capacity-based `heap_bytes()`.
//!
//! Run: `cargo bench --bench consent_restore` (optionally
//! `SMSGATE_BENCH_RECORDS=200000`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use smsgate::state::ConsentTable;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SENDERS: [&str; 8] = [
    "huinong-credit",
    "jinyun-mall",
    "acme-retail",
    "city-bank",
    "fresh-grocer",
    "travel-co",
    "telco-one",
    "*",
];

/// A deterministic mix: every recipient opts in to one sender with evidence
/// (most with an expiry); a quarter add a second record (an opt-out by
/// reply, an opt-in to another sender, a personalization opt-out, or an
/// opt-in without evidence that is ignored).
fn generate(records: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = Vec::with_capacity(records);
    let mut recipient = 0u64;
    while out.len() < records {
        recipient += 1;
        let to = if recipient.is_multiple_of(2) {
            format!("+86138{:08}", recipient)
        } else {
            format!("+1212{:07}", recipient)
        };
        let sender = SENDERS[rng.usize(..SENDERS.len() - 1)];
        let day = rng.u32(1..28);
        let expires = if rng.bool() {
            format!(r#","expires_at":"2027-10-{day:02}T00:00:00+08:00""#)
        } else {
            String::new()
        };
        out.push(format!(
            r#"{{"to":"{to}","action":"opt_in","scope":"marketing","sender":"{sender}","at":"2026-10-{day:02}T10:{:02}:00+08:00","source":"web-form","evidence_id":"ev-{recipient}"{expires}}}"#,
            rng.u32(0..60)
        ));
        if out.len() < records && rng.u32(0..4) == 0 {
            let second = match rng.u32(0..4) {
                0 => format!(
                    r#"{{"to":"{to}","action":"opt_out","scope":"marketing","sender":"{sender}","at":"2026-11-{day:02}T10:00:00+08:00","source":"reply:TD"}}"#
                ),
                1 => format!(
                    r#"{{"to":"{to}","action":"opt_in","scope":"all","sender":"{}","at":"2026-11-{day:02}T10:00:00Z","source":"app","evidence_id":"ev-x{recipient}"}}"#,
                    SENDERS[rng.usize(..SENDERS.len())]
                ),
                2 => format!(
                    r#"{{"to":"{to}","action":"opt_out","scope":"personalization","sender":"*","at":"2026-11-{day:02}T10:00:00Z","source":"privacy-center"}}"#
                ),
                _ => format!(
                    r#"{{"to":"{to}","action":"opt_in","scope":"marketing","sender":"{sender}","at":"2026-11-{day:02}T10:00:00Z","source":"import"}}"#
                ),
            };
            out.push(second);
        }
    }
    out
}

/// True under `cargo bench`, which passes `--bench`.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn main() {
    let records: usize = std::env::var("SMSGATE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        // `cargo test --all-targets` runs this without `--bench`: a smoke run.
        .unwrap_or(if bench_mode() { 1_000_000 } else { 10_000 });
    let values = generate(records);
    let input_bytes: usize = values.iter().map(String::len).sum();

    let live_before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut table = ConsentTable::new();
    let mut errors = 0usize;
    for v in &values {
        if table.apply_bytes(v.as_bytes()).is_err() {
            errors += 1;
        }
    }
    let elapsed = started.elapsed();
    let live_after = LIVE.load(Ordering::Relaxed);

    let measured = live_after.saturating_sub(live_before);
    let recipients = table.recipients().max(1);
    println!("consent restore benchmark");
    println!(
        "  records            {records} ({:.1} MB of JSON)",
        input_bytes as f64 / 1e6
    );
    println!("  parse errors       {errors}");
    println!(
        "  counted / ignored  {} / {}",
        table.counted(),
        table.ignored_without_evidence()
    );
    println!("  recipients         {}", table.recipients());
    println!("  facts kept         {}", table.facts());
    println!("  restore time       {:.3} s", elapsed.as_secs_f64());
    println!(
        "  records/s          {:.0}",
        records as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  table size         {:.1} MB (counting allocator), {:.1} MB (capacity-based)",
        measured as f64 / 1e6,
        table.heap_bytes() as f64 / 1e6
    );
    println!(
        "  bytes/recipient    {:.1} (counting allocator), {:.1} (capacity-based)",
        measured as f64 / recipients as f64,
        table.heap_bytes() as f64 / recipients as f64
    );
}
