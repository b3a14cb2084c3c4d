//! demotape's edge recorder: sources → capture queue → writer thread (sync + MCAP).
//!
//! - [`config`]: the TOML configuration and its documented defaults.
//! - [`queue`]: the non-blocking, bounded capture queue (drops are counted, never blocking).
//! - [`writer`]: one MCAP per episode, clock mapping, periodic chunk flushes, metadata.
//! - [`record_episode`]: runs one source into one episode file.
//! - [`sim`]: the `demotape-recorder sim` job (simulated robot, N episodes).
//! - [`service`]: the `demotape-recorder run` service (Zenoh control, pre-roll, split, status).
//! - [`ctl`]: the operator's client for the service.
//! - [`live`]: the decimated live copy over Zenoh for `demotape view --live`.

pub mod audit;
pub mod config;
pub mod ctl;
pub mod live;
pub mod mcap_file;
pub mod queue;
pub mod service;
pub mod sim;
pub mod timing;
pub mod writer;

use crossbeam_channel::RecvTimeoutError;
use hal::Source;
use queue::{CaptureQueue, Item};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use writer::{EpisodeMeta, EpisodeSummary, EpisodeWriter, WriterOptions};

/// Shifts a source's stream indices to its place in the episode's stream list.
/// Also offers each sample to the live copy, if any ([`live::LiveTap::offer`] never blocks).
pub(crate) struct OffsetSink {
    pub(crate) inner: Arc<CaptureQueue>,
    pub(crate) offset: usize,
    pub(crate) live: Option<Arc<live::LiveTap>>,
}

impl hal::SampleSink for OffsetSink {
    fn push(&self, mut sample: hal::Sample) -> bool {
        sample.stream += self.offset;
        if let Some(l) = &self.live
            && !matches!(sample.payload, hal::Payload::Clock)
        {
            l.offer(&sample);
        }
        self.inner.push(sample)
    }
    fn event(&self, event: hal::SourceEvent) {
        self.inner.event(event)
    }
}

/// How long the other sources of an episode may still deliver after the first one ended by
/// itself (samples in flight through a serial line).
const END_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Bounds of the capture queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

/// Record `sources` into the MCAP file at `path` until the first of them ends (a simulated
/// episode) or `stop` is cancelled; the others are then stopped too.
///
/// The writer runs on its own thread; sources only ever push into the bounded queue.
/// If writing fails (disk full, I/O error) the sources are stopped, what was written stays
/// readable, and the error is returned. With `live`, a decimated copy also goes to viewers.
#[allow(clippy::too_many_arguments)]
pub fn record_episode(
    rt: &tokio::runtime::Runtime,
    sources: Vec<Box<dyn Source>>,
    path: &Path,
    opts: &WriterOptions,
    meta: &EpisodeMeta,
    limits: QueueLimits,
    stop: CancellationToken,
    live: Option<&live::LiveHub>,
) -> anyhow::Result<EpisodeSummary> {
    let mut streams = Vec::new();
    let mut offsets = Vec::new();
    for s in &sources {
        offsets.push(streams.len());
        streams.extend(s.streams());
    }
    let tap = live.map(|h| h.tap(&streams)).transpose()?;
    let (queue, rx) = CaptureQueue::new(streams.len(), limits.messages, limits.bytes);
    let stats = queue.stats.clone();
    let status_stats = queue.stats.clone();
    let mut writer = EpisodeWriter::create(path, &streams, opts, meta)?;
    let hist_start = stats.age_histogram();
    let flush_every = opts.flush_interval;
    let source_stop = stop.child_token();
    let writer_stop = source_stop.clone();
    let writer_thread = std::thread::Builder::new()
        .name("mcap-writer".into())
        .spawn(move || -> Result<EpisodeSummary, writer::WriteError> {
            let mut last_flush = std::time::Instant::now();
            let result = (|| -> Result<(), writer::WriteError> {
                loop {
                    let wait = flush_every.saturating_sub(last_flush.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(Item::Sample { sample, bytes }) => {
                            stats.taken(&sample, bytes, hal::sim::now_ns());
                            writer.write_sample(sample)?;
                        }
                        Ok(Item::Event(e)) => {
                            writer.event(e.t_ns, &e.kind, &e.topic, e.count, &e.detail)?
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    // flushes start every `flush_every`, counted from the previous start:
                    // a flush's own time (waiting for the compression pool) must not stretch
                    // the interval, or a crash loses the interval plus two flushes
                    if last_flush.elapsed() >= flush_every {
                        last_flush = std::time::Instant::now();
                        writer.flush(&stats.drops_snapshot())?;
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                // Stop the sources, and close the file at its last complete flush so it
                // stays a valid MCAP even on a full disk.
                writer_stop.cancel();
                let closed = writer.close_after_error(&e.to_string());
                return Err(writer::WriteError::Closed {
                    error: Box::new(e),
                    closed,
                });
            }
            let peak = stats.peak_bytes.load(std::sync::atomic::Ordering::Relaxed);
            writer.peak_queue_age_ns = stats.peak_age_ns.load(std::sync::atomic::Ordering::Relaxed);
            writer.queue_age_p99_ns =
                queue::age_quantile_ns(&hist_start, &stats.age_histogram(), 0.99);
            writer.clock_drops = stats.clock_drops.load(std::sync::atomic::Ordering::Relaxed);
            writer.finish(&stats.drops_snapshot(), hal::sim::now_ns(), peak)
        })?;
    let runs: Vec<_> = sources
        .into_iter()
        .zip(offsets)
        .map(|(src, offset)| {
            let sink: Arc<dyn hal::SampleSink> = Arc::new(OffsetSink {
                inner: queue.clone(),
                offset,
                live: tap.clone(),
            });
            src.run(sink, source_stop.clone())
        })
        .collect();
    drop(queue);
    let stopper = source_stop.clone();
    let status_from = live.and_then(|hub| hub.status_every().map(|p| (hub, p)));
    let (reports, status) = std::thread::scope(|scope| {
        let reporter = status_from.map(|(hub, period)| {
            StatusReporter::start(scope, hub, period, &streams, status_stats, path, meta)
        });
        let reports = rt.block_on(async move {
            let mut pending: Vec<_> = runs.into_iter().map(Box::pin).collect();
            let mut reports = Vec::new();
            let mut first = true;
            while !pending.is_empty() {
                let (r, _i, rest) = futures::future::select_all(pending).await;
                // The first source to end ends the episode. When it ended by itself (the
                // simulator finishing), what it captured last may still be in flight through
                // the others (simulated boards: board -> pty -> serial driver): give them a
                // moment first.
                if first && !rest.is_empty() && !stopper.is_cancelled() {
                    tokio::time::sleep(END_GRACE).await;
                }
                first = false;
                stopper.cancel();
                reports.push(r);
                pending = rest;
            }
            reports
        });
        (reports, reporter.and_then(StatusReporter::stop))
    });
    let report: Result<Vec<_>, _> = reports.into_iter().collect();
    // The sink (and its sender) was moved into the source and is dropped when `run` ends, which
    // disconnects the channel; the writer drains what is queued and finishes.
    let summary = writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    let report = report?;
    tracing::debug!(?report, "sources finished");
    if let (Some(mut st), Some(hub)) = (status, live) {
        // the episode is closed: say so, with what it holds
        st.t_ns = hal::sim::now_ns();
        st.state = "idle".into();
        st.episode = None;
        st.episodes_recorded = hub.episode_done();
        st.last_episode = serde_json::to_value(&summary).ok();
        st.live = Some(hub.counters());
        hub.put_status(serde_json::to_string(&st).unwrap_or_default());
    }
    Ok(summary)
}

/// The recorder status during one [`record_episode`] (`sim`; the service has its own):
/// per channel, what was let into the queue (received, bytes), drops and rates, once a period.
struct StatusReporter<'scope> {
    stop_tx: crossbeam_channel::Sender<()>,
    thread: std::thread::ScopedJoinHandle<'scope, service::Status>,
}

impl<'scope> StatusReporter<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        hub: &'env live::LiveHub,
        period: std::time::Duration,
        streams: &[hal::StreamSpec],
        stats: Arc<queue::QueueStats>,
        path: &Path,
        meta: &EpisodeMeta,
    ) -> StatusReporter<'scope> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut status = service::Status {
            robot: hub.robot().to_string(),
            state: "recording".into(),
            channels: streams
                .iter()
                .map(|s| service::ChannelStatus {
                    topic: s.topic.clone(),
                    ..Default::default()
                })
                .collect(),
            disk_path: dir.clone(),
            episodes_recorded: hub.episodes_done(),
            ..Default::default()
        };
        let episode = serde_json::json!({
            "id": meta.episode_id,
            "part": 0,
            "path": path,
            "started_ns": meta.start_ns,
            "task": meta.task,
            "operator": meta.operator,
        });
        let started = meta.start_ns;
        let thread = scope.spawn(move || {
            let mut rates = service::RateMeter::default();
            loop {
                let now = hal::sim::now_ns();
                status.t_ns = now;
                for (c, (n, b, d)) in status.channels.iter_mut().zip(stats.counts()) {
                    (c.received, c.bytes, c.drops) = (n, b, d);
                }
                rates.update(now, &mut status.channels);
                status.queue_age_ms = stats.age_ns(now) as f64 / 1e6;
                status.queue_peak_age_ms =
                    stats.peak_age_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
                let mut ep = episode.clone();
                ep["duration_s"] = (now.saturating_sub(started) as f64 / 1e9).into();
                ep["messages"] = status
                    .channels
                    .iter()
                    .map(|c| c.received)
                    .sum::<u64>()
                    .into();
                status.episode = Some(ep);
                status.disk_free_bytes = service::free_bytes(&dir).unwrap_or(0);
                status.live = Some(hub.counters());
                hub.put_status(serde_json::to_string(&status).unwrap_or_default());
                if !matches!(
                    stop_rx.recv_timeout(period),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                ) {
                    return status;
                }
            }
        });
        StatusReporter { stop_tx, thread }
    }

    /// Stop reporting; the last status, for the closing report.
    fn stop(self) -> Option<service::Status> {
        let _ = self.stop_tx.send(());
        self.thread.join().ok()
    }
}
