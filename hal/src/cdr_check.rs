//! Validation of CDR messages received from the network, without deserializing.
//!
//! The Zenoh source records the bytes a publisher sent exactly as they were sent; before it
//! does, it checks that they are a well-formed message of the type the topic is configured
//! with, using the schema-driven reader ([`crate::ros::cdr`]: XCDR1, either byte order, every
//! length checked against the bytes that remain, nothing allocated), and reads the
//! `header.stamp`. On top of the structure, the types whose sizes must agree (an image's
//! `data` with `step x height`, a tactile array's `pressure` with `rows x cols`) are checked.
//! [`KnownType`] names the five types that have a modality of their own.
//!
//! Errors carry the byte offset (from the start of the payload, encapsulation included) and
//! the field, e.g. `offset 52: JointState.position: sequence of 1000000 f64 needs 8000000
//! bytes, 24 remain`.

use crate::msgs::{CompressedImage, Image, JointState, RosMessage, TactileArray, WrenchStamped};

/// A message type whose layout we can check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownType {
    Image,
    CompressedImage,
    JointState,
    WrenchStamped,
    TactileArray,
}

impl KnownType {
    pub const ALL: [KnownType; 5] = [
        KnownType::Image,
        KnownType::CompressedImage,
        KnownType::JointState,
        KnownType::WrenchStamped,
        KnownType::TactileArray,
    ];

    /// From a ROS type name, `sensor_msgs/msg/Image` (also `sensor_msgs/Image`).
    pub fn from_ros_name(name: &str) -> Option<Self> {
        let full = crate::ros::normalize_name(name)?;
        Self::ALL.into_iter().find(|t| t.ros_name() == full)
    }

    /// From an rmw_zenoh DDS type name, `sensor_msgs::msg::dds_::Image_`.
    pub fn from_dds_name(name: &str) -> Option<Self> {
        Self::from_ros_name(&crate::ros::from_dds_name(name)?)
    }

    pub fn ros_name(self) -> &'static str {
        match self {
            KnownType::Image => Image::TYPE_NAME,
            KnownType::CompressedImage => CompressedImage::TYPE_NAME,
            KnownType::JointState => JointState::TYPE_NAME,
            KnownType::WrenchStamped => WrenchStamped::TYPE_NAME,
            KnownType::TactileArray => TactileArray::TYPE_NAME,
        }
    }

    /// The rmw_zenoh DDS type name, `sensor_msgs::msg::dds_::Image_`.
    pub fn dds_name(self) -> String {
        crate::ros::to_dds_name(self.ros_name())
    }

    pub fn schema_text(self) -> String {
        match self {
            KnownType::Image => Image::schema_text(),
            KnownType::CompressedImage => CompressedImage::schema_text(),
            KnownType::JointState => JointState::schema_text(),
            KnownType::WrenchStamped => WrenchStamped::schema_text(),
            KnownType::TactileArray => TactileArray::schema_text(),
        }
    }
}

pub use crate::ros::cdr::{CdrError, Checked};
use crate::ros::cdr::{Layout, Leaf, Visit, walk};
use std::sync::Arc;

impl KnownType {
    /// The compiled layout of this type (from the built-in definitions).
    pub fn layout(self) -> &'static Arc<Layout> {
        static L: std::sync::OnceLock<Vec<Arc<Layout>>> = std::sync::OnceLock::new();
        let all = L.get_or_init(|| {
            KnownType::ALL
                .iter()
                .map(|t| {
                    crate::ros::Registry::builtin()
                        .layout(t.ros_name())
                        .expect("built-in types resolve (unit test)")
                })
                .collect()
        });
        &all[KnownType::ALL.iter().position(|t| *t == self).unwrap_or(0)]
    }
}

/// Records a few top-level numbers and array lengths during the walk, by field position
/// (no name comparison per field: this runs on every camera frame).
struct Dims {
    /// Positions of the wanted top-level fields.
    want: [usize; 3],
    /// Top-level fields seen so far.
    n: usize,
    vals: [Option<u64>; 3],
    cur: Option<usize>,
}

impl Visit for Dims {
    fn field(&mut self, _name: &Arc<str>) -> bool {
        // only top-level fields are reported (nothing below them is asked for)
        let k = self.n;
        self.n += 1;
        self.cur = self.want.iter().position(|w| *w == k);
        self.cur.is_some()
    }
    fn index(&mut self, _i: usize) -> bool {
        false
    }
    fn elements(&mut self) -> bool {
        false
    }
    fn array_len(&mut self, len: usize) {
        if let Some(i) = self.cur {
            self.vals[i] = Some(len as u64);
        }
    }
    fn bytes(&mut self, _b: &[u8]) -> bool {
        true
    }
    fn leaf(&mut self, v: Leaf<'_>) {
        if let (Some(i), Leaf::UInt(x)) = (self.cur, v) {
            self.vals[i] = Some(x);
        }
    }
    fn leave(&mut self) {
        self.cur = None;
    }
}

/// Where the fields `names` are in `layout` (`hint`: where the standard definition has them,
/// checked; a redefined type is searched).
fn positions(layout: &Layout, names: [&str; 3], hint: [usize; 3]) -> Option<[usize; 3]> {
    let at = |i: usize| {
        let (n, h) = (names[i], hint[i]);
        if layout.fields.get(h).is_some_and(|f| &*f.name == n) {
            Some(h)
        } else {
            layout.fields.iter().position(|f| &*f.name == n)
        }
    };
    Some([at(0)?, at(1)?, at(2)?])
}

/// Given two dimensions and a length, what is inconsistent about them, if anything.
type Consistency = fn(u64, u64, u64) -> Option<String>;

/// Check that `payload` (CDR with its encapsulation header) is a complete, well-formed
/// message of `layout`'s type; for images and tactile arrays also that the data size agrees
/// with the dimensions.
pub fn check_layout(layout: &Layout, payload: &[u8]) -> Result<Checked, CdrError> {
    let (names, hint, what): ([&str; 3], [usize; 3], Consistency) = match layout.name.as_str() {
        "sensor_msgs/msg/Image" => (["height", "step", "data"], [1, 5, 6], |h, step, n| {
            (n != step.saturating_mul(h)).then(|| {
                format!(
                    "data: {n} bytes but step {step} x height {h} = {}",
                    step * h
                )
            })
        }),
        "demotape_msgs/msg/TactileArray" => (["rows", "cols", "pressure"], [2, 3, 5], |r, c, n| {
            (n != r.saturating_mul(c))
                .then(|| format!("pressure: {n} values but rows {r} x cols {c}"))
        }),
        _ => return walk(layout, payload, &mut ()),
    };
    let Some(want) = positions(layout, names, hint) else {
        return walk(layout, payload, &mut ());
    };
    let mut d = Dims {
        want,
        n: 0,
        vals: [None; 3],
        cur: None,
    };
    let c = walk(layout, payload, &mut d)?;
    if let [Some(a), Some(b), Some(n)] = d.vals
        && let Some(e) = what(a, b, n)
    {
        return Err(CdrError {
            offset: 4,
            what: format!("{}.{e}", layout.name),
        });
    }
    Ok(c)
}

/// Check a payload of one of the known types (see [`check_layout`]).
pub fn check(ty: KnownType, payload: &[u8]) -> Result<Checked, CdrError> {
    check_layout(ty.layout(), payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(KnownType, Vec<u8>)> {
        crate::msgs::examples::samples()
            .into_iter()
            .map(|(name, bytes)| (KnownType::from_ros_name(name).expect("known"), bytes))
            .collect()
    }

    #[test]
    fn valid_messages_pass_and_give_their_stamp() {
        let stamps = [1_700_000_000_123_456_789u64, 5, 7, 9, 11];
        for ((ty, bytes), stamp) in samples().into_iter().zip(stamps) {
            let c = check(ty, &bytes).unwrap_or_else(|e| panic!("{ty:?}: {e}"));
            assert_eq!(c.stamp_ns, Some(stamp), "{ty:?}");
        }
    }

    #[test]
    fn every_truncation_and_wrong_type_is_an_error() {
        let all = samples();
        for (ty, bytes) in &all {
            for cut in 0..bytes.len() {
                // a cut inside trailing padding is still a valid message
                if let Ok(c) = check(*ty, &bytes[..cut]) {
                    assert!(bytes.len() - cut < 8, "{ty:?} cut at {cut} passed: {c:?}");
                }
            }
            for (other, _) in &all {
                if other != ty {
                    assert!(check(*other, bytes).is_err(), "{ty:?} bytes as {other:?}");
                }
            }
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let (_, mut bytes) = samples().remove(2); // JointState
        // the name sequence length sits after header (4+4+4+"cam\0") = offset 4 + 16
        bytes[4 + 16..4 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = check(KnownType::JointState, &bytes).unwrap_err();
        assert_eq!(e.offset, 20, "{e}");
        assert!(e.what.contains("JointState.name"), "{e}");
        // sizes that disagree with the dimensions
        let (_, mut img) = samples().remove(0);
        img[4 + 16..4 + 20].copy_from_slice(&3u32.to_le_bytes()); // height 2 -> 3
        let e = check(KnownType::Image, &img).unwrap_err();
        assert!(e.what.contains("18 bytes but step 9 x height 3"), "{e}");
    }

    #[test]
    fn fuzzer_finds_stay_fixed() {
        // WrenchStamped whose frame_id is "\0\x80" + NUL: not UTF-8 (cdr_check fuzz target)
        let b = [
            0, 1, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 128, 0, 0, 1, 0, 0, 0, 255, 255, 0,
            0, 255, 255, 255, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 255, 255, 0, 0,
            255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 63,
        ];
        let e = check(KnownType::WrenchStamped, &b).unwrap_err();
        assert!(e.what.contains("UTF-8"), "{e}");
    }

    #[test]
    fn type_names_round_trip() {
        for t in KnownType::ALL {
            assert_eq!(KnownType::from_ros_name(t.ros_name()), Some(t));
            assert_eq!(KnownType::from_dds_name(&t.dds_name()), Some(t));
        }
        assert_eq!(
            KnownType::from_dds_name("sensor_msgs::msg::dds_::Image_"),
            Some(KnownType::Image)
        );
        assert_eq!(
            KnownType::from_ros_name("geometry_msgs/WrenchStamped"),
            Some(KnownType::WrenchStamped)
        );
        assert_eq!(KnownType::from_ros_name("std_msgs/msg/String"), None);
    }
}
