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

/// Decode PNG bytes (RGB or RGBA, 8 bit) to RGB.
pub fn decode_png(bytes: &[u8]) -> Result<Rgb, String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; r.output_buffer_size().ok_or("PNG too large")?];
    let info = r.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(info.buffer_size());
    let px = (info.width * info.height) as usize;
    let pixels = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        c => return Err(format!("PNG color type {c:?} not supported")),
    };
    if pixels.len() != px * 3 {
        return Err("PNG size does not match its header".into());
    }
    Ok(Rgb {
        width: info.width,
        height: info.height,
        pixels,
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
        let back = decode_png(&encode_png(&rgb).unwrap()).unwrap();
        assert_eq!(back.pixels, rgb.pixels);
        let short = hal::msgs::Image {
            data: vec![0; 5],
            ..img
        };
        assert!(image_to_rgb(&short).unwrap_err().contains("needs 20 bytes"));
    }
}
