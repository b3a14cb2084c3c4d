//! The source abstraction every driver implements.
//!
//! A source declares its streams up front ([`Source::streams`]) and then, in [`Source::run`],
//! pushes samples into a [`SampleSink`] until it runs out or `stop` is cancelled. Pushing never
//! blocks: the sink accepts or drops (and counts) immediately, so a slow disk can never stall a
//! sensor driver.

use crate::sample::{Sample, StreamSpec};
use std::future::Future;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;

/// Something a driver wants written into the recording (connection lost, frames lost, a
/// device restart...), on `/demotape/events`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceEvent {
    /// Host time (ns since the Unix epoch).
    pub t_ns: u64,
    /// `connected`, `disconnected`, `gap`, `device_reboot`, `overflow`, `config_mismatch`...
    pub kind: String,
    /// The device or topic concerned.
    pub topic: String,
    pub count: u64,
    pub detail: String,
}

/// Where sources put their samples. Implemented by the recorder's capture queue.
pub trait SampleSink: Send + Sync {
    /// Offer a sample. Returns `false` if it was dropped (the sink counts drops itself).
    fn push(&self, sample: Sample) -> bool;
    /// Record an event. Never blocks; events are small and always kept.
    fn event(&self, event: SourceEvent);
}

/// What a source reports when it ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceReport {
    /// Samples produced per stream (accepted or not).
    pub produced: Vec<u64>,
    /// Samples the sink refused per stream.
    pub refused: Vec<u64>,
}

/// A driver error.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {message}")]
    Failed {
        source_name: String,
        message: String,
    },
}

pub type SourceFuture = Pin<Box<dyn Future<Output = Result<SourceReport, SourceError>> + Send>>;

/// A driver: simulated robot, Zenoh/ROS 2 topics, serial boards.
pub trait Source: Send + 'static {
    /// Short name for logs.
    fn name(&self) -> &str;
    /// The streams this source will produce, indexed by [`Sample::stream`].
    fn streams(&self) -> Vec<StreamSpec>;
    /// Produce samples until done or until `stop` is cancelled.
    fn run(
        self: Box<Self>,
        sink: std::sync::Arc<dyn SampleSink>,
        stop: CancellationToken,
    ) -> SourceFuture;
}
