//! demotape's hardware abstraction layer: one data model for every sensor sample, ROS 2
//! message types with their schemas, the source abstraction, and drivers.
//!
//! - [`msgs`]: ROS 2 / `demotape_msgs` types (serde + `cdr`) and `ros2msg` schema texts.
//! - [`sample`]: [`Sample`](sample::Sample), [`StreamSpec`](sample::StreamSpec), modalities.
//! - [`source`]: the [`Source`](source::Source) trait and the non-blocking sink it pushes to.
//! - [`kinematics`]: serial-arm forward/inverse kinematics.
//! - [`sim`]: the simulated robot, the embedded default source.
//! - [`serial`]: microcontroller boards over serial (firmware-bridge protocol).
//! - [`zenoh`]: ROS 2 topics over Zenoh (zenoh-bridge-ros2dds and rmw_zenoh key styles).
//! - [`ros`]: any ROS 2 type at run time: `.msg` definitions, the schema-driven CDR reader.
//! - [`cdr_check`]: allocation-free structural checks of CDR bytes from the network.

pub mod cdr_check;
pub mod kinematics;
pub mod msgs;
pub mod robot;
pub mod ros;
pub mod sample;
pub mod serial;
pub mod sim;
pub mod source;
pub mod zenoh;

pub use sample::{Modality, Payload, RosType, Sample, StreamSpec, StreamTable};
pub use source::{SampleSink, Source, SourceError, SourceEvent, SourceReport};

/// Keep only `[A-Za-z0-9_-]`, so no user string reaches a path unescaped.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() { "robot".into() } else { out }
}
