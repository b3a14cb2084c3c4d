//! The capture queue between sensor drivers and the writer thread.
//!
//! Bounded twice: by message count and by bytes. A push never blocks: a sample that does not
//! fit is dropped on the spot and counted against its stream, and the writer writes those
//! counts into the episode (events while recording, totals in the metadata).

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hal::{Sample, SampleSink, SourceEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What travels to the writer.
pub enum Item {
    Sample { sample: Sample, bytes: usize },
    Event(hal::SourceEvent),
}

/// Shared drop and fill counters.
pub struct QueueStats {
    pub drops: Vec<AtomicU64>,
    /// Samples (and their approximate bytes) let into the queue, per stream.
    pub accepted: Vec<AtomicU64>,
    pub accepted_bytes: Vec<AtomicU64>,
    pub bytes_in_flight: AtomicUsize,
    pub peak_bytes: AtomicUsize,
    /// Host receive time of the sample at the head of the queue (the one the writer took
    /// last, or the first pushed into an empty queue): what a crash would lose is everything
    /// received since, plus the unflushed chunk.
    pub head_receive_ns: AtomicU64,
    /// The longest any sample waited in the queue before the writer took it.
    pub peak_age_ns: AtomicU64,
    /// Clock observations (boards' heartbeats, `Payload::Clock`) refused: not samples of a
    /// stream, but counted and written into `demotape.episode_end` all the same.
    pub clock_drops: AtomicU64,
    /// How long each sample waited in the queue: a log-linear histogram (16 steps per
    /// doubling of microseconds, ≤ 6 % wide), see [`age_bucket`].
    pub age_hist: Vec<AtomicU64>,
}

/// Buckets of [`QueueStats::age_hist`]: enough for waits up to 2^40 µs.
pub const AGE_BUCKETS: usize = 16 * 38;

/// The histogram bucket of a wait of `ns`.
pub fn age_bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us < 16 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as u64; // ≥ 4
    let m = (us >> (e - 4)) & 15;
    ((16 * (e - 3) + m) as usize).min(AGE_BUCKETS - 1)
}

/// The longest wait (ns) bucket `b` holds.
pub fn bucket_upper_ns(b: usize) -> u64 {
    if b < 16 {
        return (b as u64 + 1) * 1000;
    }
    let e = b as u64 / 16 + 3;
    let m = b as u64 % 16;
    ((16 + m + 1) << (e - 4)) * 1000
}

/// The `q` quantile (upper bucket bound, ns) of the waits counted between two snapshots of
/// [`QueueStats::age_histogram`]; 0 without any.
pub fn age_quantile_ns(before: &[u64], after: &[u64], q: f64) -> u64 {
    let d: Vec<u64> = after
        .iter()
        .zip(before.iter().chain(std::iter::repeat(&0)))
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = d.iter().sum();
    if total == 0 {
        return 0;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut cum = 0;
    for (b, n) in d.iter().enumerate() {
        cum += n;
        if cum >= want {
            return bucket_upper_ns(b);
        }
    }
    bucket_upper_ns(d.len() - 1)
}

impl QueueStats {
    /// The writer took `sample` (of `bytes`) out of the queue at `now_ns`.
    pub fn taken(&self, sample: &Sample, bytes: usize, now_ns: u64) {
        self.bytes_in_flight.fetch_sub(bytes, Ordering::AcqRel);
        self.head_receive_ns
            .store(sample.host_receive_ns, Ordering::Relaxed);
        let age = now_ns.saturating_sub(sample.host_receive_ns);
        self.peak_age_ns.fetch_max(age, Ordering::Relaxed);
        self.age_hist[age_bucket(age)].fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the wait histogram (see [`age_quantile_ns`]).
    pub fn age_histogram(&self) -> Vec<u64> {
        self.age_hist
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    /// Age of the oldest sample not yet written (0 when the queue is empty): received that
    /// long ago and still only in memory.
    pub fn age_ns(&self, now_ns: u64) -> u64 {
        if self.bytes_in_flight.load(Ordering::Acquire) == 0 {
            return 0;
        }
        now_ns.saturating_sub(self.head_receive_ns.load(Ordering::Relaxed))
    }

    pub fn drops_snapshot(&self) -> Vec<u64> {
        self.drops
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .collect()
    }

    /// (accepted, accepted bytes, drops) per stream.
    pub fn counts(&self) -> Vec<(u64, u64, u64)> {
        (0..self.drops.len())
            .map(|i| {
                (
                    self.accepted[i].load(Ordering::Relaxed),
                    self.accepted_bytes[i].load(Ordering::Relaxed),
                    self.drops[i].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// The sink end, handed to sources.
pub struct CaptureQueue {
    tx: Sender<Item>,
    max_bytes: usize,
    pub stats: Arc<QueueStats>,
}

impl CaptureQueue {
    pub fn new(
        streams: usize,
        max_messages: usize,
        max_bytes: usize,
    ) -> (Arc<Self>, Receiver<Item>) {
        let (tx, rx) = crossbeam_channel::bounded(max_messages);
        let stats = Arc::new(QueueStats {
            drops: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            accepted: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            accepted_bytes: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            bytes_in_flight: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
            head_receive_ns: AtomicU64::new(0),
            peak_age_ns: AtomicU64::new(0),
            clock_drops: AtomicU64::new(0),
            age_hist: (0..AGE_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        });
        (
            Arc::new(CaptureQueue {
                tx,
                max_bytes,
                stats,
            }),
            rx,
        )
    }

    fn count_drop(&self, stream: usize, clock_only: bool) {
        if clock_only {
            self.stats.clock_drops.fetch_add(1, Ordering::Relaxed);
        } else if let Some(d) = self.stats.drops.get(stream) {
            d.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl SampleSink for CaptureQueue {
    fn push(&self, sample: Sample) -> bool {
        let stream = sample.stream;
        if stream >= self.stats.drops.len() {
            tracing::warn!(stream, "sample for an undeclared stream dropped");
            return false;
        }
        let bytes = sample.payload.approx_bytes();
        let clock_only = matches!(sample.payload, hal::Payload::Clock);
        // Reserve the bytes only if they fit. (Adding first and taking back on refusal would let
        // a refused big frame push the count over the budget for a moment and crowd out small
        // samples racing it from other threads.)
        let Ok(before) =
            self.stats
                .bytes_in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    cur.checked_add(bytes).filter(|&t| t <= self.max_bytes)
                })
        else {
            self.count_drop(stream, clock_only);
            return false;
        };
        self.stats
            .peak_bytes
            .fetch_max(before + bytes, Ordering::Relaxed);
        if before == 0 {
            // into an empty queue: this sample is the head now
            self.stats
                .head_receive_ns
                .store(sample.host_receive_ns, Ordering::Relaxed);
        }
        match self.tx.try_send(Item::Sample { sample, bytes }) {
            Ok(()) => {
                if !clock_only {
                    self.stats.accepted[stream].fetch_add(1, Ordering::Relaxed);
                    self.stats.accepted_bytes[stream].fetch_add(bytes as u64, Ordering::Relaxed);
                }
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .bytes_in_flight
                    .fetch_sub(bytes, Ordering::AcqRel);
                self.count_drop(stream, clock_only);
                false
            }
        }
    }

    fn event(&self, event: SourceEvent) {
        // Events bypass the byte budget; if even the count bound is hit, say so in the log.
        if self.tx.try_send(Item::Event(event.clone())).is_err() {
            tracing::warn!(?event, "event could not be queued");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hal::Payload;
    use hal::msgs::WrenchStamped;

    fn sample(stream: usize) -> Sample {
        Sample {
            stream,
            device_stamp_us: 0,
            transmit_stamp_us: None,
            host_receive_ns: 0,
            sequence: 0,
            boot_id: 0,
            payload: Payload::Wrench(WrenchStamped::default()),
        }
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let (q, rx) = CaptureQueue::new(2, 3, 1 << 20);
        let accepted: Vec<bool> = (0..5).map(|i| q.push(sample(i % 2))).collect();
        assert_eq!(accepted, [true, true, true, false, false]);
        assert_eq!(q.stats.drops_snapshot(), vec![1, 1]);
        assert_eq!(q.stats.counts(), vec![(2, 192, 1), (1, 96, 1)]);
        drop(rx);
        assert!(!q.push(sample(0)));
        assert_eq!(q.stats.drops_snapshot(), vec![2, 1]);
    }

    #[test]
    fn byte_budget_is_enforced() {
        let (q, _rx) = CaptureQueue::new(1, 100, 200);
        assert!(q.push(sample(0)));
        assert!(q.push(sample(0)));
        assert!(!q.push(sample(0)), "96 bytes each, budget 200");
        assert_eq!(q.stats.drops_snapshot(), vec![1]);
    }

    /// A frame too big for the budget is refused without ever counting against it: small
    /// samples pushed at the same moment from another thread all get in.
    #[test]
    fn a_refused_big_sample_never_crowds_out_small_ones() {
        // room for every small sample (96 bytes each), never for the big one
        let n = 100_000;
        let (q, rx) = CaptureQueue::new(2, 1 << 20, 96 * n);
        let big = Sample {
            stream: 1,
            payload: Payload::Raw(vec![0; 96 * n].into()),
            ..sample(1)
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let small = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    assert!(!q.push(big.clone()));
                }
            });
            while q.stats.drops[1].load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            let pushed = (0..n).filter(|_| q.push(sample(0))).count();
            stop.store(true, Ordering::Relaxed);
            pushed
        });
        let drops = q.stats.drops_snapshot();
        assert_eq!(drops[0], 0, "small drops, with {} big refusals", drops[1]);
        assert_eq!(small, n);
        assert_eq!(rx.len(), n);
    }

    #[test]
    fn age_buckets_are_ordered_and_tight() {
        let mut last = 0;
        for us in [
            0u64, 1, 15, 16, 17, 100, 999, 1000, 5_000, 123_456, 2_000_000, 60_000_000,
        ] {
            let b = age_bucket(us * 1000);
            assert!(b >= last, "{us} µs");
            last = b;
            let hi = bucket_upper_ns(b);
            assert!(hi >= us * 1000, "{us} µs: bucket up to {hi} ns");
            assert!(
                hi as f64 <= (us * 1000) as f64 * 1.07 + 1000.0,
                "{us} µs: {hi} ns"
            );
        }
        let mut h = vec![0u64; AGE_BUCKETS];
        for ms in 1..=100u64 {
            h[age_bucket(ms * 1_000_000)] += 1;
        }
        let p99 = age_quantile_ns(&[], &h, 0.99);
        assert!((99_000_000..=106_000_000).contains(&p99), "{p99}");
        assert_eq!(age_quantile_ns(&h, &h, 0.99), 0);
    }
}
