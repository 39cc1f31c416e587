//! CPU time of another process (the broker) sampled in the background, so
//! the CPU it spent inside any wall-clock window can be read afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::procstat;

/// (Unix ms, CPU seconds) samples of one process, every 25 ms.
pub struct Sampler {
    samples: Arc<Mutex<Vec<(u64, f64)>>>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    /// Samples `pid` until dropped; with `None` it records nothing.
    pub fn start(pid: Option<u32>) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = pid {
            let (s, st) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let Some(cpu) = procstat::cpu_seconds(pid) else {
                        break;
                    };
                    if let Ok(mut v) = s.lock() {
                        v.push((super::now_ms(), cpu));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            });
        }
        Sampler { samples, stop }
    }

    fn at(v: &[(u64, f64)], ms: u64) -> Option<f64> {
        let i = v.partition_point(|(t, _)| *t <= ms);
        match (i.checked_sub(1).and_then(|j| v.get(j)), v.get(i)) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                Some(a.1 + (b.1 - a.1) * (ms - a.0) as f64 / (b.0 - a.0) as f64)
            }
            (Some(a), _) => Some(a.1),
            (None, Some(b)) => Some(b.1),
            (None, None) => None,
        }
    }

    /// CPU seconds spent between two Unix-ms instants.
    pub fn between(&self, from_ms: u64, to_ms: u64) -> Option<f64> {
        let v = self.samples.lock().ok()?;
        Some(Self::at(&v, to_ms)? - Self::at(&v, from_ms)?)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_samples() {
        let v = [(1000, 1.0), (2000, 3.0)];
        assert_eq!(Sampler::at(&v, 1500), Some(2.0));
        assert_eq!(Sampler::at(&v, 2500), Some(3.0));
        assert_eq!(Sampler::at(&v, 500), Some(1.0));
    }
}
