//! One data model for every sensor sample.
//!
//! A [`Sample`] is what a driver hands to the recorder: which stream it belongs to, the
//! device's own hardware timestamp (in the device's clock domain), the host receive time
//! (on the reference clock), the device's sequence number and boot id, and the message.
//! The recorder maps the device stamp onto the reference clock (`sync`) and writes
//! `header.stamp` / MCAP `log_time` from it; `publish_time` keeps the host receive time.

use crate::msgs::{
    ClockObservations, CompressedImage, EpisodeEvent, Header, Image, JointState, RosMessage,
    TactileArray, TimeReference, WrenchStamped,
};
use serde::{Deserialize, Serialize};

/// What kind of sensor a stream carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Rgb,
    Depth,
    /// `sensor_msgs/msg/CompressedImage` (JPEG/PNG camera frames).
    CompressedRgb,
    JointState,
    Wrench,
    Tactile,
    /// Hardware trigger pulses (`sensor_msgs/msg/TimeReference`), one per camera exposure.
    Trigger,
    /// Any other ROS 2 type (`/tf`, IMU, odometry, commands, ...), recorded as published.
    Other,
}

impl Modality {
    /// The ROS 2 message type used for this modality (`Other` has none of its own: see
    /// [`StreamSpec::type_name`]).
    pub fn type_name(self) -> &'static str {
        match self {
            Modality::Other => "",
            Modality::Rgb | Modality::Depth => Image::TYPE_NAME,
            Modality::CompressedRgb => CompressedImage::TYPE_NAME,
            Modality::JointState => JointState::TYPE_NAME,
            Modality::Wrench => WrenchStamped::TYPE_NAME,
            Modality::Tactile => TactileArray::TYPE_NAME,
            Modality::Trigger => TimeReference::TYPE_NAME,
        }
    }
    /// The full `ros2msg` schema text for this modality's type.
    pub fn schema_text(self) -> String {
        match self {
            Modality::Other => String::new(),
            Modality::Rgb | Modality::Depth => Image::schema_text(),
            Modality::CompressedRgb => CompressedImage::schema_text(),
            Modality::JointState => JointState::schema_text(),
            Modality::Wrench => WrenchStamped::schema_text(),
            Modality::Tactile => TactileArray::schema_text(),
            Modality::Trigger => TimeReference::schema_text(),
        }
    }
}

/// A stream a source will produce, declared before it starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StreamSpec {
    /// ROS topic, e.g. `/camera/head/image_raw`.
    pub topic: String,
    pub modality: Modality,
    /// The device whose clock stamps this stream (several streams may share one device).
    pub device: String,
    /// Nominal rate in Hz (used for reports and gap detection).
    pub rate_hz: f64,
    /// Nominal message size in bytes (for reports and queue sizing).
    pub nominal_bytes: usize,
    /// The stream's ROS 2 type when it is not the modality's own (any type recorded from
    /// ROS 2): name, full `ros2msg` schema and RIHS01 hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ros_type: Option<RosType>,
}

/// A ROS 2 message type as the writer needs it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RosType {
    /// `pkg/msg/Type`
    pub name: String,
    /// The full `ros2msg` schema text (own definition, then every dependency).
    pub schema: String,
    /// `RIHS01_<sha256>`
    pub hash: String,
    /// The type starts with a `std_msgs/Header` (its stamp is clock-synchronized); otherwise
    /// messages are stamped when received.
    pub stamped: bool,
}

impl StreamSpec {
    /// The ROS 2 type name of this stream's messages.
    pub fn type_name(&self) -> &str {
        match &self.ros_type {
            Some(t) => &t.name,
            None => self.modality.type_name(),
        }
    }
    /// The full `ros2msg` schema text.
    pub fn schema_text(&self) -> String {
        match &self.ros_type {
            Some(t) => t.schema.clone(),
            None => self.modality.schema_text(),
        }
    }
}

/// The streams of a recording as they are now: a source that discovers topics while running
/// declares unbound slots (empty topic, see [`StreamSpec::slot`]) and binds them here before
/// it pushes their first sample.
pub type StreamTable = std::sync::Arc<std::sync::RwLock<Vec<StreamSpec>>>;

impl StreamSpec {
    /// A stream not bound to a topic yet.
    pub fn slot() -> StreamSpec {
        StreamSpec {
            topic: String::new(),
            modality: Modality::Other,
            device: String::new(),
            rate_hz: 1.0,
            nominal_bytes: 512,
            ros_type: None,
        }
    }
    pub fn is_slot(&self) -> bool {
        self.topic.is_empty()
    }
}

/// Index of a stream in the list its source declared.
pub type StreamIndex = usize;

/// The message a sample carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Image(Image),
    JointState(JointState),
    Wrench(WrenchStamped),
    Tactile(TactileArray),
    Trigger(TimeReference),
    /// No message: a clock observation only (a board's heartbeat). Its transmit stamp and
    /// receive time feed the device's clock fit and are kept on `/demotape/clock/<device>`;
    /// nothing is written on the stream's topic and it is not counted as one of its samples.
    Clock,
    /// A message exactly as a publisher serialized it (CDR with encapsulation header),
    /// already checked against the stream's type. Written byte for byte: its `header.stamp`
    /// stays what the publisher put there, the mapped capture time goes to MCAP `log_time`.
    Raw(bytes::Bytes),
}

impl Payload {
    /// The message header, for the types we build ourselves (not for [`Payload::Raw`]).
    pub fn header_mut(&mut self) -> Option<&mut Header> {
        match self {
            Payload::Image(m) => Some(&mut m.header),
            Payload::JointState(m) => Some(&mut m.header),
            Payload::Wrench(m) => Some(&mut m.header),
            Payload::Tactile(m) => Some(&mut m.header),
            Payload::Trigger(m) => Some(&mut m.header),
            Payload::Raw(_) | Payload::Clock => None,
        }
    }
    pub fn header(&self) -> Option<&Header> {
        match self {
            Payload::Image(m) => Some(&m.header),
            Payload::JointState(m) => Some(&m.header),
            Payload::Wrench(m) => Some(&m.header),
            Payload::Tactile(m) => Some(&m.header),
            Payload::Trigger(m) => Some(&m.header),
            Payload::Raw(_) | Payload::Clock => None,
        }
    }
    /// CDR-encode the message, appending to `out` (raw messages are copied as they are).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), cdr::Error> {
        match self {
            Payload::Image(m) => m.encode_into(out),
            Payload::JointState(m) => m.encode_into(out),
            Payload::Wrench(m) => m.encode_into(out),
            Payload::Tactile(m) => m.encode_into(out),
            Payload::Trigger(m) => m.encode_into(out),
            Payload::Clock => Ok(()),
            Payload::Raw(b) => {
                out.extend_from_slice(b);
                Ok(())
            }
        }
    }
    /// Approximate in-memory size, for queue accounting.
    pub fn approx_bytes(&self) -> usize {
        match self {
            Payload::Image(m) => m.data.len() + 64,
            Payload::JointState(m) => {
                m.name.iter().map(|n| n.len() + 8).sum::<usize>()
                    + 8 * (m.position.len() + m.velocity.len() + m.effort.len())
                    + 64
            }
            Payload::Wrench(_) => 96,
            Payload::Tactile(m) => 4 * m.pressure.len() + 64,
            Payload::Trigger(m) => m.source.len() + 64,
            Payload::Clock => 32,
            Payload::Raw(b) => b.len() + 32,
        }
    }
    pub fn modality_matches(&self, m: Modality) -> bool {
        matches!(
            (self, m),
            (Payload::Image(_), Modality::Rgb | Modality::Depth)
                | (Payload::JointState(_), Modality::JointState)
                | (Payload::Wrench(_), Modality::Wrench)
                | (Payload::Tactile(_), Modality::Tactile)
                | (Payload::Trigger(_), Modality::Trigger)
                | (Payload::Clock, _)
                | (Payload::Raw(_), _)
        )
    }
}

/// One sensor sample with both of its timestamps.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Index into the source's declared streams.
    pub stream: StreamIndex,
    /// Device hardware timestamp of the event (when the sample was taken), microseconds in
    /// the device's own clock.
    pub device_stamp_us: u64,
    /// When the device sent it (same clock), if the device reports that separately. The
    /// clock is fitted on transmit stamps (shorter, one-sided delay to the host) and the
    /// event stamp is translated with the fit.
    pub transmit_stamp_us: Option<u64>,
    /// Host receive time, ns since the Unix epoch on the reference clock.
    pub host_receive_ns: u64,
    /// Device sequence number of this sample within its stream.
    pub sequence: u64,
    /// Identifies the device's boot; a change means its counter restarted.
    pub boot_id: u64,
    pub payload: Payload,
}

/// The non-sensor messages the recorder itself writes.
#[derive(Clone, Debug, PartialEq)]
pub enum RecorderMessage {
    Clock(ClockObservations),
    Event(EpisodeEvent),
}
