//! demotape's companion tool: reading, inspecting (and, as they land: segmenting, reviewing,
//! exporting and viewing) recorded episodes.
//!
//! - [`inspect`]: a record-by-record walk of an MCAP episode that reports what is in it and
//!   exactly what is damaged.
//! - [`read`]: selective reading — only the chunks holding the wanted channels.
//! - [`recover`]: rebuild a valid, indexed file from a truncated or damaged one.
//! - [`label`]: `demotape annotate` — phases, outcomes, gates, sidecar and companion MCAP.
//! - [`signals`]: the signals segmentation reads from an episode.
//! - [`segment`]: task phases and grasp outcome from joints, gripper, wrench and touch.
//! - [`review`]: the human layer (append-only corrections) and the review queue; [`serve`]:
//!   `demotape review serve`, the same in the browser.
//! - [`resync`]: offline clock re-estimation from the recorded clock channels, and an audit
//!   of how far the online stamps are from it.

pub mod decode;
pub mod eval;
pub mod inspect;
pub mod label;
pub mod labels;
pub mod learn;
pub mod lerobot;
pub mod mcap_io;
pub mod read;
pub mod recover;
pub mod resync;
pub mod review;
pub mod segment;
pub mod segments;
pub mod serve;
pub mod signals;
pub mod view;
