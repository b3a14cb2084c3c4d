//! Bytes from the network, checked as each known ROS 2 type: never a panic, never an
//! allocation sized by a length field, and a payload that passes is one the type's full
//! `cdr` decoder (bounded by the payload's own length) accepts too.
#![no_main]
use hal::cdr_check::{KnownType, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for t in KnownType::ALL {
        if check(t, data).is_ok() && data.len() >= 4 && data[1] == 1 {
            // a checked little-endian payload decodes with the real decoder
            let bound = cdr::Bounded(data.len() as u64);
            let ok = match t {
                KnownType::Image => cdr::deserialize_from::<_, hal::msgs::Image, _>(data, bound).is_ok(),
                KnownType::CompressedImage => {
                    cdr::deserialize_from::<_, hal::msgs::CompressedImage, _>(data, bound).is_ok()
                }
                KnownType::JointState => {
                    cdr::deserialize_from::<_, hal::msgs::JointState, _>(data, bound).is_ok()
                }
                KnownType::WrenchStamped => {
                    cdr::deserialize_from::<_, hal::msgs::WrenchStamped, _>(data, bound).is_ok()
                }
                KnownType::TactileArray => {
                    cdr::deserialize_from::<_, hal::msgs::TactileArray, _>(data, bound).is_ok()
                }
            };
            assert!(ok, "{t:?} passed the check but does not decode");
        }
    }
});
