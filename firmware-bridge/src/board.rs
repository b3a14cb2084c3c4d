//! A simulated sensor board that speaks the protocol on a pseudo-terminal.
//!
//! The board owns the master side of a pty pair and publishes the slave's path through a
//! stable symlink (like `/dev/serial/by-id/...`), so the host opens it with `tokio-serial`
//! exactly as it would open `/dev/ttyACM0`. It answers `Identify` with `Hello`, streams after
//! `Start`, batches frames the way a USB CDC device does (one flush per USB frame), sends
//! heartbeats, and injects faults on command: corrupted bytes, dropped frames, a stall, a
//! reboot (new boot id, clock and sequence restart) and an unplug (the pty disappears, then
//! comes back as a freshly booted board).

use crate::codec::BoardCodec;
use crate::protocol::{AckStatus, ChannelInfo, Frame, Header, Message, SampleRecord, encode_frame};
use bytes::BytesMut;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Static description of a board.
#[derive(Clone, Debug)]
pub struct BoardSpec {
    pub board_id: u16,
    pub name: String,
    pub channels: Vec<ChannelInfo>,
    pub fw: (u8, u8),
}

/// Faults injected on the wire, decided per frame with a seeded generator.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Probability that any byte on the wire is replaced by a different value.
    pub corrupt_byte_prob: f64,
    /// Probability that a frame is never sent (its sequence number is used up).
    pub drop_frame_prob: f64,
    pub seed: u64,
}

/// How the board paces itself.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Flush interval of the USB link (µs of real time); 0 = write as fast as the host reads.
    pub usb_frame_us: u64,
    /// Most samples of one channel per `Samples` frame.
    pub max_batch: usize,
    /// Board-side buffer; frames beyond it are dropped and counted (`overflow_drops`).
    pub tx_buffer_bytes: usize,
    /// Heartbeat period (real time).
    pub heartbeat: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            usb_frame_us: 1000,
            max_batch: 8,
            tx_buffer_bytes: 256 * 1024,
            heartbeat: Duration::from_millis(100),
        }
    }
}

/// Something for the board to send, with its event time on the board's base clock (µs).
#[derive(Clone, Debug, PartialEq)]
pub enum FeedItem {
    Sample {
        channel: u8,
        event_time_us: u64,
        values: Vec<f32>,
    },
    Trigger {
        pulse: u32,
        event_time_us: u64,
    },
}

/// Commands to the simulated hardware.
#[derive(Clone, Debug)]
pub enum Control {
    Reboot,
    Unplug(Duration),
    Stall(Duration),
    Shutdown,
}

/// What happened to each frame the board produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Sent,
    /// Only the frame's trailing delimiter was hit: its content arrives intact (fused with
    /// the next frame, which the host's codec splits again).
    DelimiterHit,
    Corrupted,
    Dropped,
    Overflow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameLog {
    pub boot_id: u32,
    pub seq: u32,
    pub fate: Fate,
    /// For sample frames: channel, first sample index, sample count.
    pub samples: Option<(u8, u32, u32)>,
}

/// Returned when the board shuts down.
#[derive(Clone, Debug, Default)]
pub struct BoardReport {
    pub frames: Vec<FrameLog>,
    pub boots: Vec<u32>,
    pub bytes_written: u64,
    pub bytes_corrupted: u64,
    /// Feed items discarded while unplugged or not streaming.
    pub discarded_items: u64,
}

/// The board's base clock in µs (before the boot offset is subtracted).
pub type Clock = Box<dyn Fn() -> u64 + Send>;

/// A running simulated board.
pub struct BoardSim {
    link: PathBuf,
    ctl: Sender<Control>,
    streaming: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<BoardReport>>>,
}

impl BoardSim {
    /// Start a board whose serial port appears at `link` (a symlink to the pty slave).
    /// Samples to send come from `feed`; the board's clock is `clock`.
    pub fn start(
        spec: BoardSpec,
        link: &Path,
        link_cfg: LinkConfig,
        faults: FaultConfig,
        clock: Clock,
        feed: Receiver<FeedItem>,
    ) -> std::io::Result<Self> {
        let (ctl, ctl_rx) = channel();
        let mut state = State::new(
            spec,
            link.to_path_buf(),
            link_cfg,
            faults,
            clock,
            feed,
            ctl_rx,
        );
        let streaming = state.streaming_flag.clone();
        state.plug()?;
        let thread = std::thread::Builder::new()
            .name(format!("board-{}", state.spec.name))
            .spawn(move || state.run())?;
        Ok(BoardSim {
            link: link.to_path_buf(),
            ctl,
            streaming,
            thread: Some(thread),
        })
    }

    /// Path the host opens.
    pub fn path(&self) -> &Path {
        &self.link
    }

    pub fn control(&self, c: Control) {
        let _ = self.ctl.send(c);
    }

    /// A handle to send [`Control`]s from elsewhere.
    pub fn controller(&self) -> Sender<Control> {
        self.ctl.clone()
    }

    /// True while the host has started streaming (and the board is plugged in).
    pub fn streaming_flag(&self) -> Arc<AtomicBool> {
        self.streaming.clone()
    }

    /// Stop the board and get its report.
    pub fn shutdown(mut self) -> std::io::Result<BoardReport> {
        let _ = self.ctl.send(Control::Shutdown);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("board thread panicked")),
            None => Ok(BoardReport::default()),
        }
    }
}

impl Drop for BoardSim {
    fn drop(&mut self) {
        let _ = self.ctl.send(Control::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
}

struct State {
    spec: BoardSpec,
    link: PathBuf,
    cfg: LinkConfig,
    faults: FaultConfig,
    rng: ChaCha8Rng,
    clock: Clock,
    feed: Receiver<FeedItem>,
    feed_open: bool,
    ctl: Receiver<Control>,
    pty: Option<Pty>,
    boot_id: u32,
    boot_offset: u64,
    seq: u32,
    streaming: bool,
    streaming_flag: Arc<AtomicBool>,
    out: Vec<u8>,
    inbuf: BytesMut,
    codec: BoardCodec,
    next_index: Vec<u32>,
    overflow_drops: u32,
    report: BoardReport,
}

impl State {
    fn new(
        spec: BoardSpec,
        link: PathBuf,
        cfg: LinkConfig,
        faults: FaultConfig,
        clock: Clock,
        feed: Receiver<FeedItem>,
        ctl: Receiver<Control>,
    ) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(faults.seed ^ u64::from(spec.board_id) << 32);
        let n = spec
            .channels
            .iter()
            .map(|c| c.id as usize + 1)
            .max()
            .unwrap_or(0);
        State {
            spec,
            link,
            cfg,
            faults,
            rng,
            clock,
            feed,
            feed_open: true,
            ctl,
            pty: None,
            boot_id: 0,
            boot_offset: 0,
            seq: 0,
            streaming: false,
            streaming_flag: Arc::new(AtomicBool::new(false)),
            out: Vec::new(),
            inbuf: BytesMut::new(),
            codec: BoardCodec::new(),
            next_index: vec![0; n],
            overflow_drops: 0,
            report: BoardReport::default(),
        }
    }

    fn set_streaming(&mut self, on: bool) {
        self.streaming = on;
        self.streaming_flag.store(on, Ordering::Release);
    }

    fn now_us(&self) -> u64 {
        (self.clock)().saturating_sub(self.boot_offset)
    }

    fn boot(&mut self) {
        self.boot_id = self.rng.r#gen::<u32>() | 1;
        self.boot_offset = (self.clock)().saturating_sub(self.rng.gen_range(0..1000));
        self.seq = 0;
        self.set_streaming(false);
        self.out.clear();
        self.next_index.iter_mut().for_each(|i| *i = 0);
        self.report.boots.push(self.boot_id);
        // announce the new boot right away, as firmware does after reset
        let hb = Message::Heartbeat {
            streaming: false,
            overflow_drops: 0,
        };
        self.overflow_drops = 0;
        self.send(hb, 0);
    }

    /// Create the pty and publish its slave path at the link (atomically replaced).
    fn plug(&mut self) -> std::io::Result<()> {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        // Raw mode on the slave before anyone opens it: no echo, no line editing.
        let mut t = tcgetattr(&pty.slave).map_err(std::io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let flags = fcntl(&pty.master, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
        fcntl(
            &pty.master,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(std::io::Error::from)?;
        let name = nix::unistd::ttyname(pty.slave.as_fd()).map_err(std::io::Error::from)?;
        let tmp = self.link.with_extension("tmp-link");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp)?;
        std::fs::rename(&tmp, &self.link)?;
        self.pty = Some(Pty {
            master: pty.master,
            _slave: pty.slave,
        });
        self.boot();
        self.inbuf.clear();
        self.codec = BoardCodec::new();
        Ok(())
    }

    fn unplug(&mut self) {
        self.pty = None;
        let _ = std::fs::remove_file(&self.link);
        self.set_streaming(false);
    }

    fn header(&mut self) -> Header {
        let h = Header {
            board_id: self.spec.board_id,
            boot_id: self.boot_id,
            seq: self.seq,
            tx_time_us: self.now_us(),
        };
        self.seq = self.seq.wrapping_add(1);
        h
    }

    /// Encode, apply faults, queue.
    fn send(&mut self, msg: Message, tx_floor_us: u64) {
        let mut header = self.header();
        header.tx_time_us = header.tx_time_us.max(tx_floor_us);
        let samples = match &msg {
            Message::Samples {
                channel,
                first_index,
                samples,
                ..
            } => Some((*channel, *first_index, samples.len() as u32)),
            _ => None,
        };
        let log = |fate| FrameLog {
            boot_id: header.boot_id,
            seq: header.seq,
            fate,
            samples,
        };
        if self.out.len() > self.cfg.tx_buffer_bytes {
            self.overflow_drops += 1;
            self.report.frames.push(log(Fate::Overflow));
            return;
        }
        if self.faults.drop_frame_prob > 0.0
            && self.rng.gen_bool(self.faults.drop_frame_prob.min(1.0))
        {
            self.report.frames.push(log(Fate::Dropped));
            return;
        }
        let start = self.out.len();
        encode_frame(&Frame { header, msg }, &mut self.out);
        let (mut body_hit, mut delim_hit) = (false, false);
        if self.faults.corrupt_byte_prob > 0.0 {
            let end = self.out.len();
            for i in start..end {
                if self.rng.gen_bool(self.faults.corrupt_byte_prob.min(1.0)) {
                    self.out[i] ^= self.rng.gen_range(1..=255u8);
                    self.report.bytes_corrupted += 1;
                    if i + 1 == end {
                        delim_hit = true;
                    } else {
                        body_hit = true;
                    }
                }
            }
        }
        let fate = match (body_hit, delim_hit) {
            (true, _) => Fate::Corrupted,
            (false, true) => Fate::DelimiterHit,
            _ => Fate::Sent,
        };
        self.report.frames.push(log(fate));
    }

    fn handle_command(&mut self, f: Frame) {
        let reply = |status| Message::Ack {
            cmd_seq: f.header.seq,
            cmd_type: f.msg.type_byte(),
            status,
        };
        match f.msg {
            Message::Identify => {
                let hello = Message::Hello {
                    fw_major: self.spec.fw.0,
                    fw_minor: self.spec.fw.1,
                    name: self.spec.name.clone(),
                    channels: self.spec.channels.clone(),
                };
                self.send(hello, 0);
            }
            Message::Start => {
                self.set_streaming(true);
                self.send(reply(AckStatus::Ok), 0);
            }
            Message::Stop => {
                self.set_streaming(false);
                self.send(reply(AckStatus::Ok), 0);
            }
            Message::SetRate { channel, .. } => {
                let ok = self.spec.channels.iter().any(|c| c.id == channel);
                self.send(
                    reply(if ok {
                        AckStatus::Ok
                    } else {
                        AckStatus::BadArgument
                    }),
                    0,
                );
            }
            Message::ConfigureTrigger { .. } => {
                let has = self
                    .spec
                    .channels
                    .iter()
                    .any(|c| c.kind == crate::ChannelKind::Trigger);
                self.send(
                    reply(if has {
                        AckStatus::Ok
                    } else {
                        AckStatus::Unsupported
                    }),
                    0,
                );
            }
            _ => {}
        }
    }

    fn read_commands(&mut self) {
        let Some(p) = &self.pty else { return };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(&p.master, &mut buf) {
                Ok(0) => break,
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(_) => break, // EAGAIN, or EIO while no one has the slave open
            }
        }
        while let Ok(Some(f)) = self.codec.decode(&mut self.inbuf) {
            self.handle_command(f);
        }
    }

    /// Pull feed items into frames while the buffer has room.
    fn pull_feed(&mut self) {
        if !self.feed_open {
            return;
        }
        let mut batch: Option<(u8, Vec<SampleRecord>)> = None;
        let mut pulled = 0;
        while self.out.len() < self.cfg.tx_buffer_bytes / 2 && pulled < 256 {
            let item = match self.feed.try_recv() {
                Ok(i) => i,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.feed_open = false;
                    break;
                }
            };
            pulled += 1;
            if !self.streaming || self.pty.is_none() {
                self.report.discarded_items += 1;
                continue;
            }
            match item {
                FeedItem::Sample {
                    channel,
                    event_time_us,
                    values,
                } => {
                    let rec = SampleRecord {
                        event_time_us: event_time_us.saturating_sub(self.boot_offset),
                        values,
                    };
                    // keep each frame within the protocol's payload limit
                    let n_values = self
                        .spec
                        .channels
                        .iter()
                        .find(|c| c.id == channel)
                        .map_or(0, |c| c.n_values as usize);
                    let fit = ((crate::protocol::MAX_PAYLOAD - 8) / (8 + 4 * n_values)).max(1);
                    match &mut batch {
                        Some((ch, v))
                            if *ch == channel && v.len() < self.cfg.max_batch.min(fit) =>
                        {
                            v.push(rec)
                        }
                        _ => {
                            if let Some((ch, v)) = batch.take() {
                                self.flush_batch(ch, v);
                            }
                            batch = Some((channel, vec![rec]));
                        }
                    }
                }
                FeedItem::Trigger {
                    pulse,
                    event_time_us,
                } => {
                    let t = event_time_us.saturating_sub(self.boot_offset);
                    self.send(
                        Message::Trigger {
                            pulse,
                            event_time_us: t,
                        },
                        t,
                    );
                }
            }
        }
        if let Some((ch, v)) = batch.take() {
            self.flush_batch(ch, v);
        }
    }

    fn flush_batch(&mut self, channel: u8, samples: Vec<SampleRecord>) {
        let n_values = self
            .spec
            .channels
            .iter()
            .find(|c| c.id == channel)
            .map_or(0, |c| c.n_values);
        let idx = self.next_index.get(channel as usize).copied().unwrap_or(0);
        if let Some(i) = self.next_index.get_mut(channel as usize) {
            *i = i.wrapping_add(samples.len() as u32);
        }
        let last = samples.iter().map(|s| s.event_time_us).max().unwrap_or(0);
        self.send(
            Message::Samples {
                channel,
                first_index: idx,
                n_values,
                samples,
            },
            last + 20,
        );
    }

    fn write_out(&mut self) {
        let Some(p) = &self.pty else {
            self.out.clear();
            return;
        };
        while !self.out.is_empty() {
            match nix::unistd::write(&p.master, &self.out) {
                Ok(n) => {
                    self.report.bytes_written += n as u64;
                    self.out.drain(..n);
                }
                Err(_) => break, // EAGAIN: the host is not reading fast enough
            }
        }
    }

    fn run(mut self) -> std::io::Result<BoardReport> {
        let mut last_flush = Instant::now();
        let mut last_hb = Instant::now();
        let mut stalled_until: Option<Instant> = None;
        let mut unplugged_until: Option<Instant> = None;
        loop {
            match self.ctl.try_recv() {
                Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => break,
                Ok(Control::Reboot) => self.boot(),
                Ok(Control::Stall(d)) => stalled_until = Some(Instant::now() + d),
                Ok(Control::Unplug(d)) => {
                    self.unplug();
                    unplugged_until = Some(Instant::now() + d);
                }
                Err(TryRecvError::Empty) => {}
            }
            if let Some(u) = unplugged_until {
                // the board is off: whatever it would have measured is gone
                while self.feed.try_recv().is_ok() {
                    self.report.discarded_items += 1;
                }
                if Instant::now() >= u {
                    unplugged_until = None;
                    self.plug()?;
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            }
            if stalled_until.is_some_and(|s| Instant::now() < s) {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            stalled_until = None;
            self.read_commands();
            self.pull_feed();
            if last_hb.elapsed() >= self.cfg.heartbeat {
                last_hb = Instant::now();
                let hb = Message::Heartbeat {
                    streaming: self.streaming,
                    overflow_drops: self.overflow_drops,
                };
                self.send(hb, 0);
            }
            let due = self.cfg.usb_frame_us == 0
                || last_flush.elapsed() >= Duration::from_micros(self.cfg.usb_frame_us);
            if due {
                last_flush = Instant::now();
                self.write_out();
            }
            // wait for the host (readable commands / writable pty) or the next USB frame
            let wait_us = if self.cfg.usb_frame_us == 0 {
                1000
            } else {
                self.cfg.usb_frame_us
            };
            if let Some(p) = &self.pty {
                let mut flags = PollFlags::POLLIN;
                if !self.out.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                let mut fds = [PollFd::new(p.master.as_fd(), flags)];
                let idle = self.out.is_empty() && (!self.feed_open || !self.streaming);
                let ms = if idle { 5 } else { (wait_us / 1000).max(1) } as u16;
                let _ = poll(&mut fds, PollTimeout::from(ms));
                // With nothing to wait for on the fd (EIO while no host), don't spin.
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLHUP))
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        self.write_out();
        let _ = std::fs::remove_file(&self.link);
        Ok(self.report)
    }
}
