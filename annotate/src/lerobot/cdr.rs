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

/// The image's rows, each cut to its `width × bpp` pixel bytes (the padding up to `step`
/// left out); an error naming `what` when the data is shorter than `step × height`.
fn pixel_rows<'a>(
    img: &'a hal::msgs::Image,
    bpp: usize,
    what: &str,
) -> Result<impl Iterator<Item = &'a [u8]>, String> {
    let (w, h, step) = (img.width as usize, img.height as usize, img.step as usize);
    if step < w * bpp || img.data.len() < step * h {
        return Err(format!(
            "{what} {w}x{h} {} with step {step} needs {} bytes, has {}",
            img.encoding,
            step * h,
            img.data.len()
        ));
    }
    Ok(img
        .data
        .chunks_exact(step.max(1))
        .take(h)
        .map(move |r| &r[..w * bpp]))
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
    let mut out = Vec::with_capacity(w * h * 3);
    for row in pixel_rows(img, bpp, "image")? {
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

/// A depth frame in millimetres (0 = no reading), whatever it was recorded as.
#[derive(Debug)]
pub struct Depth {
    pub width: u32,
    pub height: u32,
    /// Row-major, `width * height` values.
    pub mm: Vec<u16>,
}

/// An `Image` depth map in millimetres: `16UC1`/`mono16` are millimetres already (REP 118);
/// `32FC1` is metres, rounded to the millimetre, and a NaN, infinite, negative or
/// beyond-65.535 m reading (REP 117's "no return") becomes 0.
pub fn image_to_depth(img: &hal::msgs::Image) -> Result<Depth, String> {
    let (w, h) = (img.width as usize, img.height as usize);
    let bpp = match img.encoding.as_str() {
        "16UC1" | "mono16" => 2,
        "32FC1" => 4,
        e => {
            return Err(format!(
                "image encoding {e:?} is not a depth format (16UC1, mono16 or 32FC1)"
            ));
        }
    };
    let big = img.is_bigendian != 0;
    let mut mm = Vec::with_capacity(w * h);
    for row in pixel_rows(img, bpp, "depth image")? {
        if bpp == 2 {
            mm.extend(row.chunks_exact(2).map(|b| {
                let b = [b[0], b[1]];
                if big {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                }
            }));
        } else {
            mm.extend(row.chunks_exact(4).map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                let m = if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                };
                let v = f64::from(m) * 1000.0;
                if v.is_finite() && v > 0.0 && v <= f64::from(u16::MAX) {
                    v.round() as u16
                } else {
                    0
                }
            }));
        }
    }
    Ok(Depth {
        width: img.width,
        height: img.height,
        mm,
    })
}

/// A 16-bit greyscale PNG of a depth frame (millimetres): what Pillow opens as mode `I;16`,
/// and lerobot reads as an image feature.
pub fn encode_png16(d: &Depth) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(d.mm.len());
    let mut enc = png::Encoder::new(&mut out, d.width, d.height);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Sixteen);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    // PNG stores 16-bit samples big-endian
    let be: Vec<u8> = d.mm.iter().flat_map(|v| v.to_be_bytes()).collect();
    w.write_image_data(&be).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// A depth image of a dataset (16-bit greyscale PNG, as demotape writes them, or TIFF, as
/// lerobot 0.6 embeds them) in millimetres.
pub fn decode_depth_image(bytes: &[u8]) -> Result<Depth, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "neither PNG nor TIFF (unrecognised magic bytes)".to_string())?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Tiff) {
        return Err(format!(
            "{format:?} is not a depth image format (16-bit PNG or TIFF)"
        ));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("{format:?}: {e}"))?;
    match img {
        image::DynamicImage::ImageLuma16(g) => Ok(Depth {
            width: g.width(),
            height: g.height(),
            mm: g.into_raw(),
        }),
        other => Err(format!(
            "{format:?} depth image of colour type {:?}: 16-bit greyscale (mm) is imported",
            other.color()
        )),
    }
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
    fn depth_frames_become_millimetres_and_16_bit_pngs() {
        let img = hal::msgs::Image {
            width: 2,
            height: 2,
            encoding: "16UC1".into(),
            step: 6, // padded rows
            data: vec![0x10, 0x27, 0xff, 0xff, 9, 9, 0, 0, 0x01, 0x02, 7, 7],
            ..Default::default()
        };
        let d = image_to_depth(&img).unwrap();
        assert_eq!(d.mm, vec![10_000, 65_535, 0, 0x0201]);
        let be = hal::msgs::Image {
            is_bigendian: 1,
            ..img
        };
        assert_eq!(image_to_depth(&be).unwrap().mm[0], 0x1027);
        // metres as f32: rounded to the millimetre; NaN, negative and far are no reading
        let m: Vec<u8> = [1.2345f32, f32::NAN, -1.0, 70.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = hal::msgs::Image {
            width: 4,
            height: 1,
            encoding: "32FC1".into(),
            step: 16,
            data: m,
            ..Default::default()
        };
        assert_eq!(image_to_depth(&f).unwrap().mm, vec![1235, 0, 0, 0]);
        let rgb = hal::msgs::Image {
            encoding: "rgb8".into(),
            ..f
        };
        assert!(
            image_to_depth(&rgb)
                .unwrap_err()
                .contains("not a depth format")
        );
        // the PNG decodes to the same 16-bit values
        let png = encode_png16(&d).unwrap();
        let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .unwrap()
            .into_luma16();
        assert_eq!(back.into_raw(), d.mm);
        assert_eq!(decode_depth_image(&png).unwrap().mm, d.mm);
        let rgb_png = encode_png(&Rgb {
            width: 1,
            height: 1,
            pixels: vec![1, 2, 3],
        })
        .unwrap();
        assert!(
            decode_depth_image(&rgb_png)
                .unwrap_err()
                .contains("16-bit greyscale")
        );
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
