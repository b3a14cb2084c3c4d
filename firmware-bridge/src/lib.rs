//! The host side of demotape's microcontroller sensor boards (tactile fingertips, wrist
//! force-torque sensors, camera trigger boards), and a board simulator for tests.
//!
//! - [`protocol`]: frame layout and messages (see `PROTOCOL.md`): COBS framing, CRC-32C,
//!   header with version, board id, boot id, sequence number and the 64-bit transmit time,
//!   and per-sample 64-bit event times.
//! - [`codec`]: a `tokio_util` codec that resynchronizes after garbage and recovers frames
//!   fused by a corrupted delimiter.
//! - [`board`]: a simulated board speaking the protocol on a pseudo-terminal, with its own
//!   drifting clock, USB-like batching and fault injection.
//!
//! The serial driver that turns frames into `hal` samples lives in `hal::serial`.
//!
//! Fuzzing the decoder: see `fuzz/README.md`.

pub mod board;
pub mod codec;
pub mod protocol;

pub use codec::{BoardCodec, CodecStats};
pub use protocol::{ChannelInfo, ChannelKind, Frame, FrameError, Header, Message, SampleRecord};
