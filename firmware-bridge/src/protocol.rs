//! Frame layout and messages of the demotape board protocol, version 1.
//! `firmware-bridge/PROTOCOL.md` is the normative description; this is its implementation.

use thiserror::Error;

pub const PROTOCOL_VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 22;
pub const CRC_LEN: usize = 4;
/// Largest payload a frame may carry; longer frames are rejected unread.
pub const MAX_PAYLOAD: usize = 8192;
/// Largest decoded frame.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD + CRC_LEN;
/// Largest encoded frame on the wire (COBS overhead + delimiter).
pub const MAX_WIRE_FRAME: usize = cobs::max_encoding_length(MAX_FRAME) + 1;

/// CRC-32C (Castagnoli), as computed by many MCUs' CRC units.
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What a channel measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ChannelKind {
    /// 6 values: force x, y, z (N), torque x, y, z (N·m).
    Wrench = 1,
    /// rows × cols pressures (kPa).
    Tactile = 2,
    /// Joint encoder positions (rad).
    Encoder = 3,
    /// Trigger pulses (no values).
    Trigger = 4,
}

impl ChannelKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => ChannelKind::Wrench,
            2 => ChannelKind::Tactile,
            3 => ChannelKind::Encoder,
            4 => ChannelKind::Trigger,
            _ => return None,
        })
    }
}

/// One channel a board offers (in `Hello`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: u8,
    pub kind: ChannelKind,
    pub rate_hz: u16,
    pub n_values: u16,
    pub rows: u8,
    pub cols: u8,
}

/// One sample in a batch: the event time (board clock, µs) and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRecord {
    pub event_time_us: u64,
    pub values: Vec<f32>,
}

/// Every message of protocol version 1.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    // board -> host
    Hello {
        fw_major: u8,
        fw_minor: u8,
        name: String,
        channels: Vec<ChannelInfo>,
    },
    Samples {
        channel: u8,
        first_index: u32,
        n_values: u16,
        samples: Vec<SampleRecord>,
    },
    Trigger {
        pulse: u32,
        event_time_us: u64,
    },
    Heartbeat {
        streaming: bool,
        overflow_drops: u32,
    },
    Ack {
        cmd_seq: u32,
        cmd_type: u8,
        status: AckStatus,
    },
    // host -> board
    Identify,
    Start,
    Stop,
    SetRate {
        channel: u8,
        rate_hz: u16,
    },
    ConfigureTrigger {
        enable: bool,
        period_us: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    Ok = 0,
    Unsupported = 1,
    BadArgument = 2,
}

impl Message {
    pub fn type_byte(&self) -> u8 {
        match self {
            Message::Hello { .. } => 0x01,
            Message::Samples { .. } => 0x02,
            Message::Trigger { .. } => 0x03,
            Message::Heartbeat { .. } => 0x04,
            Message::Ack { .. } => 0x05,
            Message::Identify => 0x81,
            Message::Start => 0x82,
            Message::Stop => 0x83,
            Message::SetRate { .. } => 0x84,
            Message::ConfigureTrigger { .. } => 0x85,
        }
    }
}

/// The fixed header of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub board_id: u16,
    /// Random per power-up: a change means the board's clock and sequence restarted.
    pub boot_id: u32,
    /// Frame counter per boot and direction (host commands: the command sequence).
    pub seq: u32,
    /// Board clock (µs since boot) when the frame left the board.
    pub tx_time_us: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub header: Header,
    pub msg: Message,
}

/// Why bytes between two delimiters were not a frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("COBS decoding failed")]
    Cobs,
    #[error("frame of {0} bytes is shorter than a header and CRC")]
    TooShort(usize),
    #[error("frame of {0} bytes is longer than the protocol allows")]
    TooLong(usize),
    #[error("CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    Crc { stored: u32, computed: u32 },
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("payload length field {field} does not match the {actual} bytes present")]
    Length { field: usize, actual: usize },
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("malformed {what} payload")]
    Payload { what: &'static str },
}

struct W(Vec<u8>);
impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct R<'a> {
    b: &'a [u8],
    what: &'static str,
}
impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.b.len() < n {
            return Err(FrameError::Payload { what: self.what });
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f32(&mut self) -> Result<f32, FrameError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn done(&self) -> Result<(), FrameError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Payload { what: self.what })
        }
    }
}

fn encode_payload(msg: &Message, w: &mut W) {
    match msg {
        Message::Hello {
            fw_major,
            fw_minor,
            name,
            channels,
        } => {
            w.u8(*fw_major);
            w.u8(*fw_minor);
            let n = name.as_bytes();
            let n = &n[..n.len().min(32)];
            w.u8(n.len() as u8);
            w.0.extend_from_slice(n);
            w.u8(channels.len() as u8);
            for c in channels {
                w.u8(c.id);
                w.u8(c.kind as u8);
                w.u16(c.rate_hz);
                w.u16(c.n_values);
                w.u8(c.rows);
                w.u8(c.cols);
            }
        }
        Message::Samples {
            channel,
            first_index,
            n_values,
            samples,
        } => {
            w.u8(*channel);
            w.u8(samples.len() as u8);
            w.u16(*n_values);
            w.u32(*first_index);
            for s in samples {
                w.u64(s.event_time_us);
                for v in s.values.iter().take(*n_values as usize) {
                    w.0.extend_from_slice(&v.to_le_bytes());
                }
                for _ in s.values.len()..*n_values as usize {
                    w.0.extend_from_slice(&0f32.to_le_bytes());
                }
            }
        }
        Message::Trigger {
            pulse,
            event_time_us,
        } => {
            w.u32(*pulse);
            w.u64(*event_time_us);
        }
        Message::Heartbeat {
            streaming,
            overflow_drops,
        } => {
            w.u8(*streaming as u8);
            w.u32(*overflow_drops);
        }
        Message::Ack {
            cmd_seq,
            cmd_type,
            status,
        } => {
            w.u32(*cmd_seq);
            w.u8(*cmd_type);
            w.u8(*status as u8);
        }
        Message::Identify | Message::Start | Message::Stop => {}
        Message::SetRate { channel, rate_hz } => {
            w.u8(*channel);
            w.u16(*rate_hz);
        }
        Message::ConfigureTrigger { enable, period_us } => {
            w.u8(*enable as u8);
            w.u32(*period_us);
        }
    }
}

/// The decoded (pre-COBS) bytes of a frame, CRC included.
pub fn frame_bytes(f: &Frame) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(64));
    w.u8(PROTOCOL_VERSION);
    w.u8(f.msg.type_byte());
    w.u16(f.header.board_id);
    w.u32(f.header.boot_id);
    w.u32(f.header.seq);
    w.u64(f.header.tx_time_us);
    w.u16(0); // payload length, patched below
    encode_payload(&f.msg, &mut w);
    let plen = (w.0.len() - HEADER_LEN) as u16;
    w.0[20..22].copy_from_slice(&plen.to_le_bytes());
    let crc = CRC.checksum(&w.0);
    w.u32(crc);
    w.0
}

/// Encode a frame for the wire: COBS, then the 0x00 delimiter. Appends to `out`.
pub fn encode_frame(f: &Frame, out: &mut Vec<u8>) {
    let raw = frame_bytes(f);
    let start = out.len();
    out.resize(start + cobs::max_encoding_length(raw.len()), 0);
    let n = cobs::encode(&raw, &mut out[start..]);
    out.truncate(start + n);
    out.push(0);
}

/// Parse decoded (pre-COBS) frame bytes, CRC included.
pub fn parse_frame(raw: &[u8]) -> Result<Frame, FrameError> {
    if raw.len() < HEADER_LEN + CRC_LEN {
        return Err(FrameError::TooShort(raw.len()));
    }
    if raw.len() > MAX_FRAME {
        return Err(FrameError::TooLong(raw.len()));
    }
    let (body, crc) = raw.split_at(raw.len() - CRC_LEN);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let computed = CRC.checksum(body);
    if stored != computed {
        return Err(FrameError::Crc { stored, computed });
    }
    let mut r = R {
        b: body,
        what: "header",
    };
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let ty = r.u8()?;
    let header = Header {
        board_id: r.u16()?,
        boot_id: r.u32()?,
        seq: r.u32()?,
        tx_time_us: r.u64()?,
    };
    let plen = r.u16()? as usize;
    if plen != r.b.len() {
        return Err(FrameError::Length {
            field: plen,
            actual: r.b.len(),
        });
    }
    let msg = parse_payload(ty, r.b)?;
    Ok(Frame { header, msg })
}

fn parse_payload(ty: u8, b: &[u8]) -> Result<Message, FrameError> {
    let what = match ty {
        0x01 => "hello",
        0x02 => "samples",
        0x03 => "trigger",
        0x04 => "heartbeat",
        0x05 => "ack",
        0x81..=0x85 => "command",
        other => return Err(FrameError::UnknownType(other)),
    };
    let mut r = R { b, what };
    let msg = match ty {
        0x01 => {
            let fw_major = r.u8()?;
            let fw_minor = r.u8()?;
            let nlen = r.u8()? as usize;
            let name = String::from_utf8_lossy(r.take(nlen)?).into_owned();
            let n = r.u8()? as usize;
            let mut channels = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.u8()?;
                let kind = ChannelKind::from_u8(r.u8()?).ok_or(FrameError::Payload { what })?;
                channels.push(ChannelInfo {
                    id,
                    kind,
                    rate_hz: r.u16()?,
                    n_values: r.u16()?,
                    rows: r.u8()?,
                    cols: r.u8()?,
                });
            }
            Message::Hello {
                fw_major,
                fw_minor,
                name,
                channels,
            }
        }
        0x02 => {
            let channel = r.u8()?;
            let n = r.u8()? as usize;
            let n_values = r.u16()?;
            let first_index = r.u32()?;
            // check the size before allocating anything
            if r.b.len() != n * (8 + 4 * n_values as usize) {
                return Err(FrameError::Payload { what });
            }
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let event_time_us = r.u64()?;
                let mut values = Vec::with_capacity(n_values as usize);
                for _ in 0..n_values {
                    values.push(r.f32()?);
                }
                samples.push(SampleRecord {
                    event_time_us,
                    values,
                });
            }
            Message::Samples {
                channel,
                first_index,
                n_values,
                samples,
            }
        }
        0x03 => Message::Trigger {
            pulse: r.u32()?,
            event_time_us: r.u64()?,
        },
        0x04 => Message::Heartbeat {
            streaming: r.u8()? != 0,
            overflow_drops: r.u32()?,
        },
        0x05 => {
            let cmd_seq = r.u32()?;
            let cmd_type = r.u8()?;
            let status = match r.u8()? {
                0 => AckStatus::Ok,
                1 => AckStatus::Unsupported,
                2 => AckStatus::BadArgument,
                _ => return Err(FrameError::Payload { what }),
            };
            Message::Ack {
                cmd_seq,
                cmd_type,
                status,
            }
        }
        0x81 => Message::Identify,
        0x82 => Message::Start,
        0x83 => Message::Stop,
        0x84 => Message::SetRate {
            channel: r.u8()?,
            rate_hz: r.u16()?,
        },
        0x85 => Message::ConfigureTrigger {
            enable: r.u8()? != 0,
            period_us: r.u32()?,
        },
        _ => unreachable!("filtered above"),
    };
    r.done()?;
    Ok(msg)
}

/// Decode the bytes between two delimiters (COBS-encoded, without the 0x00).
pub fn decode_chunk(chunk: &[u8], scratch: &mut Vec<u8>) -> Result<Frame, FrameError> {
    if chunk.len() > MAX_WIRE_FRAME {
        return Err(FrameError::TooLong(chunk.len()));
    }
    scratch.clear();
    scratch.resize(chunk.len(), 0);
    let rep = cobs::decode(chunk, scratch).map_err(|_| FrameError::Cobs)?;
    let n = rep.frame_size();
    parse_frame(&scratch[..n])
}
