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
}

impl QueueStats {
    /// The writer took `sample` (of `bytes`) out of the queue at `now_ns`.
    pub fn taken(&self, sample: &Sample, bytes: usize, now_ns: u64) {
        self.bytes_in_flight.fetch_sub(bytes, Ordering::AcqRel);
        self.head_receive_ns
            .store(sample.host_receive_ns, Ordering::Relaxed);
        self.peak_age_ns.fetch_max(
            now_ns.saturating_sub(sample.host_receive_ns),
            Ordering::Relaxed,
        );
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
}
