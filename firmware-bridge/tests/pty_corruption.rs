//! 60 s of 1 kHz wrench and 200 Hz tactile data through a real pseudo-terminal and
//! `tokio-serial`, with 0.1% of the bytes on the wire corrupted: every uncorrupted frame is
//! delivered exactly once, no corrupted frame is delivered, and the losses the host counts
//! from sequence gaps equal the faults the board injected.

use firmware_bridge::board::{BoardSim, BoardSpec, Fate, FaultConfig, FeedItem, LinkConfig};
use firmware_bridge::{BoardCodec, ChannelInfo, ChannelKind, Frame, Header, Message};
use futures::{SinkExt, StreamExt};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::Framed;

// The first value carries the sample's index, so every delivered sample can be checked.
fn wrench(i: u64) -> Vec<f32> {
    (0..6)
        .map(|k| {
            if k == 0 {
                i as f32
            } else {
                (i as f32) * 0.001 + k as f32
            }
        })
        .collect()
}
fn tactile(i: u64) -> Vec<f32> {
    (0..256)
        .map(|k| {
            if k == 0 {
                i as f32
            } else {
                ((i * 256 + k) % 1000) as f32 * 0.01
            }
        })
        .collect()
}

#[test]
fn corrupted_bytes_lose_exactly_the_corrupted_frames() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("board0");
    let spec = BoardSpec {
        board_id: 7,
        name: "wrist".into(),
        fw: (1, 2),
        channels: vec![
            ChannelInfo {
                id: 0,
                kind: ChannelKind::Wrench,
                rate_hz: 1000,
                n_values: 6,
                rows: 1,
                cols: 6,
            },
            ChannelInfo {
                id: 1,
                kind: ChannelKind::Tactile,
                rate_hz: 200,
                n_values: 256,
                rows: 16,
                cols: 16,
            },
        ],
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // 60 s of data on the board's clock, sent as fast as the host reads
    for ms in 0..60_000u64 {
        tx.send(FeedItem::Sample {
            channel: 0,
            event_time_us: 1_000_000 + ms * 1000,
            values: wrench(ms),
        })
        .unwrap();
        if ms % 5 == 0 {
            let i = ms / 5;
            tx.send(FeedItem::Sample {
                channel: 1,
                event_time_us: 1_000_000 + ms * 1000,
                values: tactile(i),
            })
            .unwrap();
        }
    }
    drop(tx);
    let link_cfg = LinkConfig {
        usb_frame_us: 0,
        max_batch: 1,
        ..Default::default()
    };
    let faults = FaultConfig {
        corrupt_byte_prob: 0.001,
        drop_frame_prob: 0.0,
        seed: 42,
    };
    let board = BoardSim::start(spec, &link, link_cfg, faults, Box::new(|| 0), rx).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (delivered, gaps, stats) = rt.block_on(async {
        let port = tokio_serial::new(link.to_string_lossy(), 921_600)
            .open_native_async()
            .expect("open pty");
        let mut framed = Framed::new(port, BoardCodec::new());
        let cmd = |seq, msg| Frame {
            header: Header {
                board_id: 0,
                boot_id: 0,
                seq,
                tx_time_us: 0,
            },
            msg,
        };
        framed.send(cmd(1, Message::Identify)).await.unwrap();
        framed.send(cmd(2, Message::Start)).await.unwrap();
        let mut delivered: Vec<Frame> = Vec::new();
        let mut last_seq: Option<u32> = None;
        let mut gaps = 0u64;
        let mut last_data = std::time::Instant::now();
        loop {
            // heartbeats go on forever: stop once no samples came for a while
            if last_data.elapsed() > Duration::from_millis(1500) {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(500), framed.next()).await {
                Ok(Some(Ok(f))) => {
                    if matches!(f.msg, Message::Samples { .. }) {
                        last_data = std::time::Instant::now();
                    }
                    if let Some(l) = last_seq {
                        gaps += u64::from(f.header.seq.wrapping_sub(l).wrapping_sub(1));
                    }
                    last_seq = Some(f.header.seq);
                    delivered.push(f);
                }
                Ok(Some(Err(e))) => panic!("read error {e}"),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        (delivered, gaps, framed.codec().stats.clone())
    });
    let report = board.shutdown().unwrap();

    let fate: HashMap<u32, Fate> = report.frames.iter().map(|f| (f.seq, f.fate)).collect();
    // frames whose content reached the wire intact (a hit on the delimiter alone leaves the
    // content intact: the codec splits the two fused frames again)
    let sent: HashSet<u32> = report
        .frames
        .iter()
        .filter(|f| matches!(f.fate, Fate::Sent | Fate::DelimiterHit))
        .map(|f| f.seq)
        .collect();
    let delimiter_hits = report
        .frames
        .iter()
        .filter(|f| f.fate == Fate::DelimiterHit)
        .count();
    let corrupted = report
        .frames
        .iter()
        .filter(|f| f.fate == Fate::Corrupted)
        .count() as u64;
    let mut seen = HashSet::new();
    let mut wrench_n = 0;
    let mut tactile_n = 0;
    for f in &delivered {
        assert!(
            seen.insert(f.header.seq),
            "frame {} delivered twice",
            f.header.seq
        );
        assert_ne!(
            fate.get(&f.header.seq),
            Some(&Fate::Corrupted),
            "frame {} was corrupted on the wire but delivered",
            f.header.seq
        );
        if let Message::Samples {
            channel, samples, ..
        } = &f.msg
        {
            for s in samples {
                let i = s.values[0] as u64;
                match channel {
                    0 => {
                        assert_eq!(s.values, wrench(i));
                        assert_eq!(s.event_time_us, 1_000_000 + i * 1000);
                        wrench_n += 1;
                    }
                    _ => {
                        assert_eq!(s.values, tactile(i));
                        assert_eq!(s.event_time_us, 1_000_000 + i * 5000);
                        tactile_n += 1;
                    }
                }
            }
        }
    }
    let missing: Vec<u32> = sent.difference(&seen).copied().collect();
    assert!(
        missing.is_empty(),
        "{} intact frames not delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // frames lost as the host counts them (sequence gaps, plus any after the last delivered)
    let last = delivered.last().map(|f| f.header.seq).unwrap();
    let tail = report.frames.iter().filter(|f| f.seq > last).count() as u64;
    assert_eq!(
        gaps + tail,
        corrupted,
        "host-counted losses vs injected corrupted frames"
    );
    println!(
        "frames: {} sent intact ({} of them with a corrupted delimiter), {} corrupted ({} bytes hit), {} delivered; samples delivered: {} wrench, {} tactile; codec: {:?}",
        sent.len(),
        delimiter_hits,
        corrupted,
        report.bytes_corrupted,
        delivered.len(),
        wrench_n,
        tactile_n,
        stats
    );
    assert!(
        wrench_n > 50_000 && tactile_n > 3_000,
        "most of the data got through"
    );
    assert!(corrupted > 1000, "0.1% of bytes must hit many frames");
}
