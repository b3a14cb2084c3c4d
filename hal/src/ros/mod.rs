//! Any ROS 2 message type, known at run time: definitions ([`msgdef`]: the `.msg` parser,
//! the type graph, schema texts and RIHS01 hashes) and the schema-driven CDR reader
//! ([`cdr`]: validation with byte offsets, decoding, field paths).

pub mod cdr;
pub mod msgdef;

pub use cdr::{CdrError, Checked, FieldPath, Layout, Leaf, Seg, Value, Visit, check, decode, walk};
pub use msgdef::{DefError, MsgDef, Registry, from_dds_name, normalize_name, to_dds_name};
