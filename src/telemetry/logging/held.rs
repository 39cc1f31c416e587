//! Log lines of one decide batch written together.
//!
//! The gate writes one line per quarantined event, on the decide thread.
//! Written with one `write` call each, the system calls were about 2 % of
//! that thread's time in the benchmark. So a decide worker holds its lines
//! while it decides a batch ([`hold`]) and writes them with one call when
//! the batch is done: the guard's drop, which also runs on a panic. Every
//! other thread, and a worker between batches, writes each line at once.
//! Holding does not nest: the first guard dropped writes what is held.

use std::cell::RefCell;
use std::io::{self, Write};
use std::marker::PhantomData;

thread_local! {
    /// This thread's held lines; `None` when nothing is held.
    static HELD: RefCell<Option<Lines>> = const { RefCell::new(None) };
}

/// Held lines past this size are written at once (a batch of long lines
/// must not grow the buffer without bound).
const MAX_HELD: usize = 64 * 1024;

/// Where held lines go when written (stderr; a recorder in tests).
type Sink = fn(&[u8]);

struct Lines {
    buf: Vec<u8>,
    sink: Sink,
}

fn to_stderr(lines: &[u8]) {
    // A log line that cannot be written has nowhere else to go.
    let _ = io::stderr().write_all(lines);
}

/// While it lives, this thread's log lines are collected; dropping it
/// writes them.
pub struct Held {
    /// Bound to the thread whose lines it holds.
    _thread: PhantomData<*const ()>,
}

/// Holds this thread's log lines until the returned guard is dropped.
pub fn hold() -> Held {
    hold_to(to_stderr)
}

fn hold_to(sink: Sink) -> Held {
    HELD.with(|h| {
        h.borrow_mut().get_or_insert_with(|| Lines {
            buf: Vec::new(),
            sink,
        });
    });
    Held {
        _thread: PhantomData,
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(lines) = HELD.with(|h| h.borrow_mut().take())
            && !lines.buf.is_empty()
        {
            (lines.sink)(&lines.buf);
        }
    }
}

/// The subscriber's writer: stderr, or this thread's held lines while a
/// [`Held`] lives.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let held = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let lines = h.as_mut()?;
            lines.buf.extend_from_slice(buf);
            if lines.buf.len() >= MAX_HELD {
                (lines.sink)(&lines.buf);
                lines.buf.clear();
            }
            Some(())
        });
        match held {
            Some(()) => Ok(buf.len()),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every sink call of every test (tests run in parallel: each looks
    /// for its own lines).
    static WRITTEN: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    fn record(lines: &[u8]) {
        WRITTEN.lock().unwrap().push(lines.to_vec());
    }

    fn written(lines: &[u8]) -> bool {
        WRITTEN.lock().unwrap().iter().any(|w| w == lines)
    }

    fn held_len() -> Option<usize> {
        HELD.with(|h| h.borrow().as_ref().map(|l| l.buf.len()))
    }

    #[test]
    fn lines_of_a_batch_are_written_with_one_call_when_the_guard_drops() {
        let guard = hold_to(record);
        Stderr.write_all(b"{\"batch\":1}\n").unwrap();
        Stderr.write_all(b"{\"batch\":2}\n").unwrap();
        assert_eq!(held_len(), Some(24), "held, not written");
        drop(guard);
        assert_eq!(held_len(), None, "nothing held after the batch");
        assert!(written(b"{\"batch\":1}\n{\"batch\":2}\n"));
    }

    #[test]
    fn held_lines_are_written_on_a_panic_too() {
        let r = std::thread::spawn(|| {
            let _guard = hold_to(record);
            Stderr.write_all(b"before the panic\n").unwrap();
            panic!("a decide batch failed");
        })
        .join();
        assert!(r.is_err());
        assert!(written(b"before the panic\n"));
    }

    #[test]
    fn without_a_guard_nothing_is_held() {
        Stderr.write_all(b"").unwrap();
        assert_eq!(held_len(), None);
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        let _guard = hold_to(record);
        let half = vec![b'h'; MAX_HELD / 2];
        Stderr.write_all(&half).unwrap();
        assert_eq!(held_len(), Some(MAX_HELD / 2));
        Stderr.write_all(&half).unwrap();
        assert_eq!(held_len(), Some(0), "written when it reached the limit");
        assert!(written(&[half.as_slice(), &half].concat()));
    }
}
