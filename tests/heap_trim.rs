//! `heap::trim` returns freed C-heap memory to the system; `trim_every`
//! stops with the gate. A test binary of its own: the resident set it
//! measures is this process's, so no other test may allocate beside it.

use std::sync::Mutex;
use std::time::Duration;

use smsgate::gate::heap;
use smsgate::gate::shutdown::Shutdown;

const BLOCK: usize = 64 * 1024;
const BLOCKS: usize = 2048; // 128 MiB

/// The two tests run one at a time: a trim by the second would release the
/// first one's hole before it measures.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's resident set in MB, from `/proc/self/statm` (pages).
fn rss() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / 1e6
}

/// Blocks below glibc's mmap threshold come from an arena; freeing all but
/// the last leaves one large hole under a block still in use, which glibc
/// keeps resident (it only gives back an arena's top) until a trim.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_trim_gives_back_a_freed_hole_in_the_c_heap() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let blocks: Vec<*mut libc::c_void> = (0..BLOCKS)
        .map(|_| {
            // SAFETY: plain malloc/memset/free on blocks this test owns.
            unsafe {
                let p = libc::malloc(BLOCK);
                assert!(!p.is_null());
                libc::memset(p, 1, BLOCK);
                p
            }
        })
        .collect();
    let last = blocks[BLOCKS - 1];
    for p in &blocks[..BLOCKS - 1] {
        // SAFETY: each pointer came from malloc above and is freed once.
        unsafe { libc::free(*p) };
    }
    let before = rss();
    assert!(heap::trim(), "malloc_trim found nothing to release");
    let after = rss();
    println!("resident {before:.0} MiB before the trim, {after:.0} MiB after");
    // SAFETY: as above.
    unsafe { libc::free(last) };
    let freed_mb = ((BLOCKS - 1) * BLOCK) as f64 / (1024.0 * 1024.0);
    assert!(
        before - after > freed_mb / 2.0,
        "resident set {before:.0} → {after:.0} MiB after freeing {freed_mb:.0} MiB and trimming"
    );
}

#[test]
fn trimming_every_interval_stops_with_the_gate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        let task = tokio::spawn(heap::trim_every(
            Duration::from_millis(10),
            shutdown.clone(),
        ));
        // A few trims run (each on a blocking thread) before the stop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("trim_every did not stop after shutdown")
            .expect("trim_every panicked");
    });
}
