//! Fuzz the board-protocol decoder: arbitrary bytes, fed in arbitrary splits, must never
//! panic, hang or allocate unboundedly, and every frame it returns must re-encode to bytes
//! that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use firmware_bridge::BoardCodec;
use firmware_bridge::protocol::encode_frame;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut codec = BoardCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for part in [&data[..split], &data[split..]] {
        buf.extend_from_slice(part);
        while let Ok(Some(f)) = codec.decode(&mut buf) {
            frames.push(f);
        }
    }
    for f in frames {
        let mut wire = Vec::new();
        encode_frame(&f, &mut wire);
        let mut c2 = BoardCodec::new();
        let mut b2 = BytesMut::from(&wire[..]);
        let back = c2.decode(&mut b2).expect("decode").expect("a frame");
        assert_eq!(format!("{back:?}"), format!("{f:?}"));
    }
});
