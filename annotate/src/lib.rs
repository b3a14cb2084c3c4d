//! demotape's companion tool: reading, inspecting (and, as they land: segmenting, reviewing,
//! exporting and viewing) recorded episodes.
//!
//! - [`inspect`]: a record-by-record walk of an MCAP episode that reports what is in it and
//!   exactly what is damaged.

pub mod inspect;
