//! Decoding throughput of the board protocol on one core: a realistic stream (1 kHz wrench
//! frames, 200 Hz 16x16 tactile frames, heartbeats) through the codec, as frames/s and MB/s.
//! Run: `cargo bench -p demotape-firmware-bridge --bench decode`. Last line: JSON.

use bytes::BytesMut;
use firmware_bridge::protocol::encode_frame;
use firmware_bridge::{BoardCodec, Frame, Header, Message, SampleRecord};
use std::time::Instant;
use tokio_util::codec::Decoder;

fn main() {
    // one minute of a wrist board: 60k wrench frames, 12k tactile frames, 600 heartbeats
    let mut wire = Vec::new();
    let mut seq = 0u32;
    let mut frames = 0u64;
    let mut push = |msg: Message, t: u64, wire: &mut Vec<u8>| {
        encode_frame(
            &Frame {
                header: Header {
                    board_id: 3,
                    boot_id: 77,
                    seq,
                    tx_time_us: t,
                },
                msg,
            },
            wire,
        );
        seq += 1;
        frames += 1;
    };
    for ms in 0..60_000u64 {
        let t = ms * 1000;
        let v: Vec<f32> = (0..6).map(|k| (ms as f32).sin() * k as f32).collect();
        push(
            Message::Samples {
                channel: 0,
                first_index: ms as u32,
                n_values: 6,
                samples: vec![SampleRecord {
                    event_time_us: t,
                    values: v,
                }],
            },
            t + 30,
            &mut wire,
        );
        if ms % 5 == 0 {
            let v: Vec<f32> = (0..256).map(|k| ((ms + k) % 97) as f32 * 0.1).collect();
            push(
                Message::Samples {
                    channel: 1,
                    first_index: (ms / 5) as u32,
                    n_values: 256,
                    samples: vec![SampleRecord {
                        event_time_us: t,
                        values: v,
                    }],
                },
                t + 40,
                &mut wire,
            );
        }
        if ms % 100 == 0 {
            push(
                Message::Heartbeat {
                    streaming: true,
                    overflow_drops: 0,
                },
                t + 50,
                &mut wire,
            );
        }
    }
    let mb = wire.len() as f64 / 1e6;
    let mut rates = Vec::new();
    for _ in 0..9 {
        let mut codec = BoardCodec::new();
        let t = Instant::now();
        let mut n = 0u64;
        // feed in 4 KiB reads, as a serial port delivers
        let mut buf = BytesMut::with_capacity(1 << 16);
        for chunk in wire.chunks(4096) {
            buf.extend_from_slice(chunk);
            while let Some(f) = codec.decode(&mut buf).expect("decode") {
                n += 1;
                std::hint::black_box(&f);
            }
        }
        assert_eq!(n, frames);
        rates.push(t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let s = rates[rates.len() / 2];
    let fps = frames as f64 / s;
    let mbps = mb / s;
    println!(
        "decoded {frames} frames ({mb:.1} MB) in {:.1} ms (median of 9): {fps:.0} frames/s, {mbps:.0} MB/s on one core",
        s * 1e3
    );
    println!(
        "that is {:.0}x the stream's real-time rate (one wrist board: {:.2} MB/s)",
        60.0 / s,
        mb / 60.0
    );
    println!(
        "{{\"bench\":\"firmware-decode\",\"frames_per_s\":{fps:.0},\"mb_per_s\":{mbps:.1},\"realtime_factor\":{:.0}}}",
        60.0 / s
    );
}
