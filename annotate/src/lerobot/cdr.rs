//! Checked CDR decoding of recorded messages (`cdr-encoding` checks every length against the
//! remaining input, so a hostile payload is an error, not a giant allocation).

pub use hal::msgs::decode;

/// An RGB frame, whatever it was recorded as.
#[derive(Debug)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    /// Tightly packed RGB, `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// An `Image` as tightly packed RGB (rgb8, bgr8, rgba8, bgra8, mono8 accepted).
pub fn image_to_rgb(img: &hal::msgs::Image) -> Result<Rgb, String> {
    let (w, h) = (img.width as usize, img.height as usize);
    let bpp = match img.encoding.as_str() {
        "rgb8" | "bgr8" => 3,
        "rgba8" | "bgra8" => 4,
        "mono8" => 1,
        e => return Err(format!("image encoding {e:?} is not an RGB camera format")),
    };
    let step = img.step as usize;
    if step < w * bpp || img.data.len() < step * h {
        return Err(format!(
            "image {w}x{h} {} with step {step} needs {} bytes, has {}",
            img.encoding,
            step * h,
            img.data.len()
        ));
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for row in img.data.chunks_exact(step).take(h) {
        let row = &row[..w * bpp];
        match img.encoding.as_str() {
            "rgb8" => out.extend_from_slice(row),
            "bgr8" => row
                .chunks_exact(3)
                .for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            "rgba8" => row
                .chunks_exact(4)
                .for_each(|p| out.extend_from_slice(&p[..3])),
            "bgra8" => row
                .chunks_exact(4)
                .for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            _ => row.iter().for_each(|&g| out.extend_from_slice(&[g, g, g])),
        }
    }
    Ok(Rgb {
        width: img.width,
        height: img.height,
        pixels: out,
    })
}

/// PNG bytes of an RGB frame (fast compression: camera noise does not compress anyway).
pub fn encode_png(rgb: &Rgb) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rgb.pixels.len() / 2);
    let mut enc = png::Encoder::new(&mut out, rgb.width, rgb.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(&rgb.pixels).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decode a `CompressedImage` payload (JPEG, as image_transport's `compressed` plugin
/// publishes it, or PNG) to RGB. The container is recognised by its magic bytes, not by the
/// message's free-form `format` string (`"rgb8; jpeg compressed bgr8"`, `"jpeg"`, ...): the
/// colours inside a JPEG or PNG are what they are whatever the publisher's source encoding was.
pub fn decode_compressed(bytes: &[u8]) -> Result<Rgb, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "neither JPEG nor PNG (unrecognised magic bytes)".to_string())?;
    if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return Err(format!("{format:?} is not decoded (JPEG and PNG are)"));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("{format:?}: {e}"))?
        .into_rgb8();
    Ok(Rgb {
        width: img.width(),
        height: img.height(),
        pixels: img.into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_and_bgr() {
        let img = hal::msgs::Image {
            width: 3,
            height: 2,
            encoding: "bgr8".into(),
            step: 10, // padded rows
            data: (0..20).collect(),
            ..Default::default()
        };
        let rgb = image_to_rgb(&img).unwrap();
        assert_eq!(&rgb.pixels[..3], &[2, 1, 0]);
        assert_eq!(&rgb.pixels[9..12], &[12, 11, 10]);
        let back = decode_compressed(&encode_png(&rgb).unwrap()).unwrap();
        assert_eq!(back.pixels, rgb.pixels);
        let short = hal::msgs::Image {
            data: vec![0; 5],
            ..img
        };
        assert!(image_to_rgb(&short).unwrap_err().contains("needs 20 bytes"));
    }

    /// A smooth 64x48 test card: red and green ramps, a blue checker of 8-pixel squares.
    fn card() -> Vec<u8> {
        let mut px = Vec::with_capacity(64 * 48 * 3);
        for y in 0..48u32 {
            for x in 0..64u32 {
                let blue = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 200 };
                px.extend_from_slice(&[(x * 4) as u8, (y * 5) as u8, blue]);
            }
        }
        px
    }

    #[test]
    fn jpeg_frames_decode_to_rgb_close_to_what_was_encoded() {
        let px = card();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode(&px, 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        let rgb = decode_compressed(&jpeg).unwrap();
        assert_eq!((rgb.width, rgb.height), (64, 48));
        assert_eq!(rgb.pixels.len(), px.len());
        let diff: Vec<u32> = rgb
            .pixels
            .iter()
            .zip(&px)
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .collect();
        let mean = diff.iter().sum::<u32>() as f64 / diff.len() as f64;
        // quality 95: a lossy copy, but of this picture, not another (swapped channels or a
        // shifted image would be off by tens on average)
        assert!(mean < 3.0, "mean abs difference {mean}");
        // a grey JPEG comes out as RGB too
        let mut grey = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut grey, 90)
            .encode(&[128; 16 * 8], 16, 8, image::ExtendedColorType::L8)
            .unwrap();
        let g = decode_compressed(&grey).unwrap();
        assert_eq!(g.pixels.len(), 16 * 8 * 3);
        assert!(g.pixels.iter().all(|&v| v.abs_diff(128) <= 2));
    }

    #[test]
    fn damaged_or_unknown_compressed_frames_are_errors() {
        let err = decode_compressed(b"GIF89a....").unwrap_err();
        assert!(err.contains("Gif"), "{err}");
        let err = decode_compressed(&[0u8; 32]).unwrap_err();
        assert!(err.contains("magic"), "{err}");
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode(&card(), 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        // cut inside the entropy-coded data: an error or a frame of the right size, never a
        // panic or a frame of another size
        for cut in [3, 20, jpeg.len() / 2] {
            if let Ok(rgb) = decode_compressed(&jpeg[..cut]) {
                assert_eq!(rgb.pixels.len(), 64 * 48 * 3, "cut at {cut}");
            }
        }
    }
}
