#![allow(dead_code)]
//! BASELINE for benches/cdr_reader.rs: the hand-written per-type checks the recorder used
//! before the schema-driven reader (hal/src/cdr_check.rs at 471fee9), kept only to measure
//! against.
//!
//! Structural validation of CDR messages received from the network, without deserializing.
//!
//! The Zenoh source records the bytes a publisher sent exactly as they were sent; before it
//! does, it checks that they are a well-formed message of the type the topic is configured
//! with (XCDR1, either byte order, alignment relative to the end of the 4-byte encapsulation
//! header) and reads the `header.stamp`. The walk allocates nothing and checks every length
//! against the bytes that remain, so a hostile length field can neither allocate nor read
//! out of bounds (unlike `cdr::deserialize`, which sizes its buffer from the length field).
//!
//! Errors carry the byte offset (from the start of the payload, encapsulation included) and
//! the field, e.g. `offset 52: JointState.position: sequence of 1000000 f64 needs 8000000
//! bytes, 24 remain`.

pub use hal::cdr_check::{CdrError, KnownType};

/// What the check learned about a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// `header.stamp` in ns (as published; 0 when the publisher left it unset).
    pub stamp_ns: u64,
}

struct Walker<'a> {
    b: &'a [u8],
    /// position in `b` (the body, after the encapsulation header)
    pos: usize,
    little: bool,
    ty: &'static str,
}

impl<'a> Walker<'a> {
    fn err(&self, field: &str, what: impl std::fmt::Display) -> CdrError {
        CdrError {
            offset: self.pos + 4,
            what: format!("{}.{field}: {what}", self.ty),
        }
    }

    fn align(&mut self, n: usize, field: &str) -> Result<(), CdrError> {
        let pad = (n - self.pos % n) % n;
        if self.b.len() - self.pos < pad {
            return Err(self.err(field, "truncated (alignment padding)"));
        }
        self.pos += pad;
        Ok(())
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], CdrError> {
        let remain = self.b.len() - self.pos;
        if n > remain {
            return Err(self.err(field, format!("needs {n} bytes, {remain} remain")));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, field: &str) -> Result<u32, CdrError> {
        self.align(4, field)?;
        let s: [u8; 4] = self.take(4, field)?.try_into().expect("4 bytes");
        Ok(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    fn u8(&mut self, field: &str) -> Result<u8, CdrError> {
        Ok(self.take(1, field)?[0])
    }

    fn skip_f64s(&mut self, n: usize, field: &str) -> Result<(), CdrError> {
        if n > 0 {
            self.align(8, field)?;
        }
        let bytes = n
            .checked_mul(8)
            .ok_or_else(|| self.err(field, "length overflows"))?;
        self.take(bytes, field).map(|_| ())
    }

    /// A sequence length, checked against what remains (each element is at least
    /// `min_elem` bytes).
    fn seq_len(&mut self, min_elem: usize, field: &str) -> Result<usize, CdrError> {
        self.align(4, field)?;
        let at = self.pos;
        let n = self.u32(field)? as usize;
        let remain = self.b.len() - self.pos;
        if n.saturating_mul(min_elem) > remain {
            self.pos = at; // report the length field's own offset
            return Err(self.err(
                field,
                format!(
                    "sequence of {n} elements needs at least {} bytes, {remain} remain",
                    n.saturating_mul(min_elem)
                ),
            ));
        }
        Ok(n)
    }

    fn string(&mut self, field: &str) -> Result<&'a [u8], CdrError> {
        let n = self.seq_len(1, field)?;
        if n == 0 {
            return Err(self.err(field, "string length 0 (must count its NUL terminator)"));
        }
        let s = self.take(n, field)?;
        if s[n - 1] != 0 {
            return Err(self.err(field, "string is not NUL-terminated"));
        }
        // ROS 2 strings are UTF-8; readers (rosbags, mcap-ros2, cdr) refuse anything else
        if std::str::from_utf8(&s[..n - 1]).is_err() {
            self.pos -= n;
            return Err(self.err(field, "string is not valid UTF-8"));
        }
        Ok(&s[..n - 1])
    }

    fn header(&mut self) -> Result<u64, CdrError> {
        let sec = self.u32("header.stamp.sec")? as i32;
        let nanosec = self.u32("header.stamp.nanosec")?;
        if nanosec >= 1_000_000_000 {
            return Err(self.err("header.stamp.nanosec", format!("{nanosec} >= 1e9")));
        }
        self.string("header.frame_id")?;
        Ok(if sec < 0 {
            0
        } else {
            sec as u64 * 1_000_000_000 + nanosec as u64
        })
    }

    fn finish(&self) -> Result<(), CdrError> {
        // serializers may pad the body to a multiple of 4 (or 8)
        let rest = &self.b[self.pos..];
        if rest.len() >= 8 || rest.iter().any(|&b| b != 0) {
            return Err(CdrError {
                offset: self.pos + 4,
                what: format!("{}: {} unexpected trailing bytes", self.ty, rest.len()),
            });
        }
        Ok(())
    }
}

/// Check that `payload` (CDR with its encapsulation header) is a complete, well-formed `ty`.
pub fn check(ty: KnownType, payload: &[u8]) -> Result<Checked, CdrError> {
    if payload.len() < 4 {
        return Err(CdrError {
            offset: 0,
            what: format!(
                "{} bytes: shorter than the CDR encapsulation header",
                payload.len()
            ),
        });
    }
    let little = match (payload[0], payload[1]) {
        (0, 1) => true,
        (0, 0) => false,
        (a, b) => {
            return Err(CdrError {
                offset: 0,
                what: format!(
                    "encapsulation {a:#04x} {b:#04x} is not plain CDR (XCDR1 BE/LE expected)"
                ),
            });
        }
    };
    let name = ty.ros_name().rsplit('/').next().unwrap_or_default();
    let mut w = Walker {
        b: &payload[4..],
        pos: 0,
        little,
        ty: name,
    };
    let stamp_ns = w.header()?;
    match ty {
        KnownType::Image => {
            let height = w.u32("height")? as usize;
            w.u32("width")?;
            w.string("encoding")?;
            w.u8("is_bigendian")?;
            let step = w.u32("step")? as usize;
            let n = w.seq_len(1, "data")?;
            if n as u64 != step as u64 * height as u64 {
                return Err(w.err(
                    "data",
                    format!(
                        "{n} bytes but step {step} x height {height} = {}",
                        step * height
                    ),
                ));
            }
            w.take(n, "data")?;
        }
        KnownType::CompressedImage => {
            w.string("format")?;
            let n = w.seq_len(1, "data")?;
            w.take(n, "data")?;
        }
        KnownType::JointState => {
            let names = w.seq_len(5, "name")?;
            for _ in 0..names {
                w.string("name[]")?;
            }
            for field in ["position", "velocity", "effort"] {
                let n = w.seq_len(8, field)?;
                w.skip_f64s(n, field)?;
            }
        }
        KnownType::WrenchStamped => w.skip_f64s(6, "wrench")?,
        KnownType::TactileArray => {
            w.string("pad")?;
            let rows = w.u32("rows")? as u64;
            let cols = w.u32("cols")? as u64;
            w.u32("taxel_size")?;
            let n = w.seq_len(4, "pressure")?;
            if n as u64 != rows * cols {
                return Err(w.err(
                    "pressure",
                    format!("{n} values but rows {rows} x cols {cols}"),
                ));
            }
            w.take(n * 4, "pressure")?;
        }
    }
    w.finish()?;
    Ok(Checked { stamp_ns })
}
