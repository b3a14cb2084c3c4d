//! ROS 2 message types (serde + `cdr`) and their `ros2msg` schema texts.
//!
//! Field order and types follow the ROS 2 IDL exactly, so `cdr::serialize::<_, _, CdrLe>`
//! produces the same bytes a ROS 2 node would publish (XCDR1 little-endian with the 4-byte
//! encapsulation header). Byte arrays use `serde_bytes` so they are written as one block.
//!
//! Every type also knows its full schema text in the `ros2msg` encoding that MCAP readers
//! (Foxglove, `mcap-ros2-support`, Rerun, rosbags) use: the type's own definition, then each
//! dependency after a line of 80 `=` and a `MSG: pkg/msg/Type` line.

use serde::{Deserialize, Serialize};

/// A ROS 2 message type we can write to MCAP.
pub trait RosMessage: Serialize {
    /// Full type name, e.g. `sensor_msgs/msg/Image`.
    const TYPE_NAME: &'static str;

    /// The complete `ros2msg` schema, own definition then every dependency, from the one
    /// type registry ([`crate::ros::Registry::builtin`]: the ROS 2 Jazzy `.msg` files and
    /// [`DEMOTAPE_MSGS`]) — the same text a discovered topic of this type gets.
    fn schema_text() -> String {
        crate::ros::Registry::builtin()
            .schema_text(Self::TYPE_NAME)
            .expect("every RosMessage type is in the built-in registry (unit test)")
    }

    /// Serialize as CDR (little-endian, with encapsulation header) appending to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), cdr::Error> {
        cdr::serialize_into::<_, _, _, cdr::CdrLe>(out, self, cdr::Infinite)
    }

    /// Serialize as CDR into a fresh buffer.
    fn encode(&self) -> Result<Vec<u8>, cdr::Error> {
        let mut v = Vec::new();
        self.encode_into(&mut v)?;
        Ok(v)
    }
}

/// The `.msg` texts of demotape's own types (`demotape_msgs`), which the built-in registry
/// adds to the ROS 2 standard packages.
pub const DEMOTAPE_MSGS: &[(&str, &str)] = &[
    (
        "demotape_msgs/msg/TactileArray",
        "# One pressure map from a tactile pad, row-major, kPa.\nstd_msgs/Header header\nstring pad\nuint32 rows\nuint32 cols\nfloat32 taxel_size\nfloat32[] pressure\n",
    ),
    (
        "demotape_msgs/msg/ClockObservations",
        "# Raw clock observations of one device, batched.\nstd_msgs/Header header\nstring device\nuint64 boot_id\nuint64[] device_stamp_us\nuint64[] event_stamp_us\nuint64[] host_receive_ns\nuint64[] sequence\nuint64[] mapped_ns\n",
    ),
    (
        "demotape_msgs/msg/EpisodeEvent",
        "# Something that happened while recording.\nstd_msgs/Header header\nstring kind\nstring topic\nuint64 count\nstring detail\n",
    ),
    (
        "demotape_msgs/msg/Annotation",
        "# One labeled interval of an annotation layer.\nstd_msgs/Header header\nstring layer\nstring kind\nstring label\nbuiltin_interfaces/Time start\nbuiltin_interfaces/Time end\nfloat64 confidence\nstring evidence\nstring provenance\n",
    ),
];

/// The separator line between definitions in a `ros2msg` schema: exactly 80 `=`.
pub const SEPARATOR: &str =
    "================================================================================";

/// `builtin_interfaces/msg/Time`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// From nanoseconds since the Unix epoch (saturating at the `i32` seconds range).
    pub fn from_nanos(ns: u64) -> Self {
        let sec = (ns / 1_000_000_000).min(i32::MAX as u64) as i32;
        Time {
            sec,
            nanosec: (ns % 1_000_000_000) as u32,
        }
    }
    /// Nanoseconds since the Unix epoch (negative seconds clamp to 0).
    pub fn as_nanos(&self) -> u64 {
        (self.sec.max(0) as u64) * 1_000_000_000 + self.nanosec as u64
    }
}

/// `std_msgs/msg/Header`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `sensor_msgs/msg/Image`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    pub is_bigendian: u8,
    pub step: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl RosMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
}

/// `sensor_msgs/msg/CompressedImage`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CompressedImage {
    pub header: Header,
    pub format: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl RosMessage for CompressedImage {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/CompressedImage";
}

/// `sensor_msgs/msg/JointState`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct JointState {
    pub header: Header,
    pub name: Vec<String>,
    pub position: Vec<f64>,
    pub velocity: Vec<f64>,
    pub effort: Vec<f64>,
}

impl RosMessage for JointState {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/JointState";
}

/// `geometry_msgs/msg/Vector3`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Vector3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// `geometry_msgs/msg/Wrench`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Wrench {
    pub force: Vector3,
    pub torque: Vector3,
}

/// `geometry_msgs/msg/WrenchStamped`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct WrenchStamped {
    pub header: Header,
    pub wrench: Wrench,
}

impl RosMessage for WrenchStamped {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/WrenchStamped";
}

/// `sensor_msgs/msg/TimeReference`: one hardware trigger pulse. `header.stamp` is the pulse
/// on the reference clock, `time_ref` the board's own stamp of it (µs since the board's boot,
/// as seconds and nanoseconds), `source` the board and line (`trigger_board/line0`); the
/// pulse number is the MCAP message's sequence number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TimeReference {
    pub header: Header,
    pub time_ref: Time,
    pub source: String,
}

impl RosMessage for TimeReference {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/TimeReference";
}

/// `demotape_msgs/msg/TactileArray`: one pressure map from a tactile pad.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TactileArray {
    /// `frame_id` names the pad's frame.
    pub header: Header,
    /// Pad name, e.g. `right_a_tip`.
    pub pad: String,
    pub rows: u32,
    pub cols: u32,
    /// Edge length of one taxel in meters.
    pub taxel_size: f32,
    /// Row-major pressures in kPa, `rows * cols` values.
    pub pressure: Vec<f32>,
}

impl RosMessage for TactileArray {
    const TYPE_NAME: &'static str = "demotape_msgs/msg/TactileArray";
}

/// `demotape_msgs/msg/ClockObservations`: raw (device counter, host receive) pairs of one
/// device, batched, so an episode can be re-synchronized offline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ClockObservations {
    /// `stamp` = host time the batch was written; `frame_id` = device id.
    pub header: Header,
    pub device: String,
    /// Changes whenever the device's counter restarts (reboot, reconnect).
    pub boot_id: u64,
    /// Device hardware counter in microseconds that the clock was fitted on: the transmit
    /// stamp where the device sends one, else the sample's own stamp.
    pub device_stamp_us: Vec<u64>,
    /// The samples' event stamps (same clock; equal to `device_stamp_us` for devices with a
    /// single stamp).
    pub event_stamp_us: Vec<u64>,
    /// Host `CLOCK_REALTIME` receive time of the same samples, ns since the Unix epoch.
    pub host_receive_ns: Vec<u64>,
    /// The device's sequence number of each sample.
    pub sequence: Vec<u64>,
    /// The reference-clock time the recorder assigned to each sample (ns), for auditing.
    pub mapped_ns: Vec<u64>,
}

impl RosMessage for ClockObservations {
    const TYPE_NAME: &'static str = "demotape_msgs/msg/ClockObservations";
}

/// `demotape_msgs/msg/EpisodeEvent`: something that happened during recording
/// (start, stop, drops, gaps, clock resets, operator marks).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct EpisodeEvent {
    pub header: Header,
    /// `start`, `stop`, `drop`, `gap`, `clock_reset`, `mark`, ...
    pub kind: String,
    /// Topic the event concerns, empty if none.
    pub topic: String,
    /// A count (dropped samples, gap length), 0 if not applicable.
    pub count: u64,
    pub detail: String,
}

impl RosMessage for EpisodeEvent {
    const TYPE_NAME: &'static str = "demotape_msgs/msg/EpisodeEvent";
}

/// `demotape_msgs/msg/Annotation`: one labeled interval of an annotation layer (a task phase
/// or a grasp outcome), on `/demotape/annotations/<layer>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Annotation {
    /// `stamp` = start of the interval.
    pub header: Header,
    /// `auto` or `human`.
    pub layer: String,
    /// `phase` or `outcome`.
    pub kind: String,
    /// e.g. `reach`, `grasp`, `success`, `slip`.
    pub label: String,
    pub start: Time,
    pub end: Time,
    pub confidence: f64,
    /// Which signals and thresholds the label rests on (or the human's reason).
    pub evidence: String,
    /// Tool version and configuration hash, or the human author.
    pub provenance: String,
}

impl RosMessage for Annotation {
    const TYPE_NAME: &'static str = "demotape_msgs/msg/Annotation";
}

/// Decode a CDR payload with its 4-byte encapsulation header (XCDR1, either byte order).
///
/// Safe on untrusted bytes: `cdr-encoding` checks every sequence length against the remaining
/// input, so a hostile length is an error, not a giant allocation.
pub fn decode<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    if data.len() < 4 {
        return Err(format!(
            "payload of {} bytes has no encapsulation header",
            data.len()
        ));
    }
    let r = match data[1] {
        1 => cdr_encoding::from_bytes::<T, byteorder::LittleEndian>(&data[4..]),
        0 => cdr_encoding::from_bytes::<T, byteorder::BigEndian>(&data[4..]),
        k => return Err(format!("unsupported CDR representation {k:#04x}")),
    };
    r.map(|(v, _)| v).map_err(|e| e.to_string())
}

impl Image {
    /// Bytes per pixel of the encodings we can resample (`None` for others, e.g. Bayer).
    pub fn bytes_per_pixel(&self) -> Option<usize> {
        Some(match self.encoding.as_str() {
            "mono8" | "8UC1" => 1,
            "16UC1" | "mono16" => 2,
            "rgb8" | "bgr8" | "8UC3" => 3,
            "rgba8" | "bgra8" | "32FC1" | "8UC4" => 4,
            _ => return None,
        })
    }

    /// Every `stride`-th pixel of every `stride`-th row (nearest-neighbour decimation: depth
    /// values stay real measurements, never averages across an edge). Returns `None` when the
    /// encoding is unknown or the buffer is shorter than `step * height`; `stride <= 1` is a
    /// plain copy.
    pub fn downsampled(&self, stride: u32) -> Option<Image> {
        let bpp = self.bytes_per_pixel()?;
        let (w, h, step) = (
            self.width as usize,
            self.height as usize,
            self.step as usize,
        );
        if step < w.checked_mul(bpp)? || self.data.len() < step.checked_mul(h)? {
            return None;
        }
        let s = stride.max(1) as usize;
        let (nw, nh) = (w.div_ceil(s), h.div_ceil(s));
        let mut data = Vec::with_capacity(nw * nh * bpp);
        for r in (0..h).step_by(s) {
            let row = &self.data[r * step..r * step + w * bpp];
            if s == 1 {
                data.extend_from_slice(row);
            } else {
                for px in row.chunks_exact(bpp).step_by(s) {
                    data.extend_from_slice(px);
                }
            }
        }
        Some(Image {
            header: self.header.clone(),
            height: nh as u32,
            width: nw as u32,
            encoding: self.encoding.clone(),
            is_bigendian: self.is_bigendian,
            step: (nw * bpp) as u32,
            data,
        })
    }
}

/// Small valid messages of the five sensor types, shared by the checks' tests.
#[cfg(test)]
pub(crate) mod examples {
    use super::*;

    pub(crate) fn header(ns: u64) -> Header {
        Header {
            stamp: Time::from_nanos(ns),
            frame_id: "cam".into(),
        }
    }

    pub(crate) fn js() -> JointState {
        JointState {
            header: header(7),
            name: vec!["a".into(), "joint_2".into()],
            position: vec![0.1, 0.2],
            velocity: vec![],
            effort: vec![1.0, 2.0],
        }
    }

    /// (type name, CDR bytes); stamps 1_700_000_000_123_456_789, 5, 7, 9, 11 ns.
    pub(crate) fn samples() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                Image::TYPE_NAME,
                Image {
                    header: header(1_700_000_000_123_456_789),
                    height: 2,
                    width: 3,
                    encoding: "rgb8".into(),
                    is_bigendian: 0,
                    step: 9,
                    data: (0..18).collect(),
                }
                .encode()
                .unwrap(),
            ),
            (
                CompressedImage::TYPE_NAME,
                CompressedImage {
                    header: header(5),
                    format: "jpeg".into(),
                    data: vec![1, 2, 3],
                }
                .encode()
                .unwrap(),
            ),
            (JointState::TYPE_NAME, js().encode().unwrap()),
            (
                WrenchStamped::TYPE_NAME,
                WrenchStamped {
                    header: header(9),
                    wrench: Wrench {
                        force: Vector3 {
                            x: 1.0,
                            y: 2.0,
                            z: 3.0,
                        },
                        torque: Vector3::default(),
                    },
                }
                .encode()
                .unwrap(),
            ),
            (
                TactileArray::TYPE_NAME,
                TactileArray {
                    header: header(11),
                    pad: "thumb".into(),
                    rows: 2,
                    cols: 2,
                    taxel_size: 0.004,
                    pressure: vec![0.0, 1.0, 2.0, 3.0],
                }
                .encode()
                .unwrap(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_has_separators_and_dependencies() {
        let s = WrenchStamped::schema_text();
        assert!(
            s.contains("\nstd_msgs/Header header\nWrench wrench\n"),
            "{s}"
        );
        assert_eq!(s.matches(SEPARATOR).count(), 4);
        assert!(s.contains("\nMSG: geometry_msgs/Vector3\n"));
        assert!(s.contains("\nfloat64 x\n"));
        assert_eq!(SEPARATOR.len(), 80);
        // every type demotape writes has its schema (the registry knows them all)
        for text in [
            Image::schema_text(),
            CompressedImage::schema_text(),
            JointState::schema_text(),
            TactileArray::schema_text(),
            ClockObservations::schema_text(),
            EpisodeEvent::schema_text(),
            Annotation::schema_text(),
        ] {
            assert!(text.contains("std_msgs/Header header"), "{text}");
        }
    }

    #[test]
    fn cdr_layout_matches_ros2() {
        let m = WrenchStamped {
            header: Header {
                stamp: Time { sec: 1, nanosec: 2 },
                frame_id: "ab".into(),
            },
            wrench: Wrench {
                force: Vector3 {
                    x: 1.0,
                    y: 2.0,
                    z: 3.0,
                },
                torque: Vector3::default(),
            },
        };
        let b = m.encode().unwrap();
        // encapsulation header: CDR_LE
        assert_eq!(&b[..4], &[0, 1, 0, 0]);
        // sec, nanosec
        assert_eq!(&b[4..12], &[1, 0, 0, 0, 2, 0, 0, 0]);
        // string length 3 (incl. NUL), "ab\0"
        assert_eq!(&b[12..19], &[3, 0, 0, 0, b'a', b'b', 0]);
        // padding to 8-byte alignment (relative to after the encapsulation), then 1.0f64
        assert_eq!(&b[20..28], &1.0f64.to_le_bytes());
        assert_eq!(b.len(), 20 + 6 * 8);
        let back: WrenchStamped = cdr::deserialize(&b).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn image_bytes_are_one_block() {
        let img = Image {
            height: 1,
            width: 2,
            encoding: "rgb8".into(),
            step: 6,
            data: vec![1, 2, 3, 4, 5, 6],
            ..Default::default()
        };
        let b = img.encode().unwrap();
        assert!(b.ends_with(&[6, 0, 0, 0, 1, 2, 3, 4, 5, 6]));
        let back: Image = cdr::deserialize(&b).unwrap();
        assert_eq!(back, img);
    }

    #[test]
    fn time_round_trip() {
        let t = Time::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(t.sec, 1_700_000_000);
        assert_eq!(t.nanosec, 123_456_789);
        assert_eq!(t.as_nanos(), 1_700_000_000_123_456_789);
    }
    #[test]
    fn downsampled_takes_every_nth_pixel_of_every_nth_row() {
        // 3x2 rgb8 with 2 bytes of row padding
        let img = Image {
            height: 2,
            width: 3,
            encoding: "rgb8".into(),
            step: 11,
            data: (0u8..22).collect(),
            ..Default::default()
        };
        let d = img.downsampled(2).unwrap();
        assert_eq!((d.width, d.height, d.step), (2, 1, 6));
        assert_eq!(d.data, vec![0, 1, 2, 6, 7, 8]);
        assert_eq!(img.downsampled(1).unwrap().data.len(), 18);
        let short = Image {
            data: vec![0; 10],
            ..img.clone()
        };
        assert!(short.downsampled(2).is_none());
        let bayer = Image {
            encoding: "bayer_rggb8".into(),
            ..img
        };
        assert!(bayer.downsampled(2).is_none());
    }

    #[test]
    fn checked_decode_reads_both_byte_orders_and_refuses_hostile_lengths() {
        let m = Image {
            height: 1,
            width: 2,
            encoding: "mono8".into(),
            step: 2,
            data: vec![7, 9],
            ..Default::default()
        };
        let le = m.encode().unwrap();
        assert_eq!(decode::<Image>(&le).unwrap(), m);
        let be = cdr::serialize::<_, _, cdr::CdrBe>(&m, cdr::Infinite).unwrap();
        assert_eq!(decode::<Image>(&be).unwrap(), m);
        let mut bad = le.clone();
        let n = bad.len();
        bad[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode::<Image>(&bad).is_err());
        assert!(decode::<Image>(&le[..2]).is_err());
    }
}
