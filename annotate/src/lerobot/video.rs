//! MP4 video through the `ffmpeg` program (Debian's package: `apt-get install ffmpeg`): a real
//! encoder, run as a child process fed raw RGB frames on stdin.
//!
//! What LeRobot's decoder needs, and what the flags give: constant frame rate with pts
//! `k / fps` from 0 (raw input at `-framerate fps`), one frame per row, no B-frames (so no
//! MP4 edit list shifting the timestamps), yuv420p, a keyframe every 2 frames like lerobot's
//! own encoder (fast random access). H.264 by libx264, or AV1 by libsvtav1 with lerobot
//! 0.4.4's own settings (CRF 30, preset 12).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The ffmpeg to use: `$DEMOTAPE_FFMPEG`, else `ffmpeg` on the PATH.
pub fn ffmpeg() -> PathBuf {
    std::env::var_os("DEMOTAPE_FFMPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ffmpeg"))
}

/// The video codec of an export, with its encoder settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Codec {
    /// libx264, CRF 18, preset veryfast.
    #[default]
    H264,
    /// libsvtav1 as lerobot 0.4.4 encodes (its default): CRF 30, preset 12.
    Av1,
}

impl Codec {
    /// info.json's `video.codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Av1 => "av1",
        }
    }
    fn encoder(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Av1 => "libsvtav1",
        }
    }
    pub fn default_crf(self) -> u32 {
        match self {
            Codec::H264 => 18,
            Codec::Av1 => 30,
        }
    }
    pub fn default_preset(self) -> &'static str {
        match self {
            Codec::H264 => "veryfast",
            Codec::Av1 => "12",
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "h264" => Ok(Codec::H264),
            "av1" => Ok(Codec::Av1),
            o => Err(format!("video codec {o:?}: h264 or av1")),
        }
    }
}

/// How the encoder runs: codec, quality (CRF), preset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoSettings {
    pub codec: Codec,
    pub crf: u32,
    pub preset: String,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings {
            codec: Codec::H264,
            crf: Codec::H264.default_crf(),
            preset: Codec::H264.default_preset().into(),
        }
    }
}

/// Fails with an actionable message when ffmpeg (or the codec's encoder) is missing.
pub fn check_codec(codec: Codec) -> anyhow::Result<()> {
    check_available()?;
    if codec == Codec::H264 {
        return Ok(());
    }
    let exe = ffmpeg();
    let out = Command::new(&exe)
        .args(["-hide_banner", "-encoders"])
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", exe.display()))?;
    if !String::from_utf8_lossy(&out.stdout).contains(codec.encoder()) {
        anyhow::bail!(
            "`{}` has no {} encoder for --vcodec {}; install an ffmpeg built with it (Debian              bookworm's has libsvtav1) or use --vcodec h264",
            exe.display(),
            codec.encoder(),
            codec.name()
        );
    }
    Ok(())
}

/// Fails with an actionable message when ffmpeg (or its libx264) is missing.
pub fn check_available() -> anyhow::Result<()> {
    let exe = ffmpeg();
    let out = Command::new(&exe)
        .args(["-hide_banner", "-encoders"])
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "video export needs ffmpeg, and `{}` could not be run ({e}); install it \
                 (Debian/Ubuntu: apt-get install ffmpeg), set DEMOTAPE_FFMPEG, or export \
                 images without --video",
                exe.display()
            )
        })?;
    if !String::from_utf8_lossy(&out.stdout).contains("libx264") {
        anyhow::bail!(
            "`{}` has no libx264 encoder; install a full ffmpeg (Debian: apt-get install ffmpeg)",
            exe.display()
        );
    }
    Ok(())
}

/// lerobot 0.6's depth video codec and pixel format (`DepthEncoderConfig`: HEVC Main 12,
/// `gray12le`), and the encoder that writes them.
pub const DEPTH_CODEC: &str = "hevc";
pub const DEPTH_PIX_FMT: &str = "gray12le";
const DEPTH_ENCODER: &str = "libx265";
/// The largest 12-bit depth code (lerobot's `DEPTH_QMAX`).
pub const DEPTH_QMAX: u16 = 4095;

/// Fails with an actionable message when ffmpeg has no libx265 (depth videos).
pub fn check_depth_codec() -> anyhow::Result<()> {
    check_available()?;
    let exe = ffmpeg();
    let out = Command::new(&exe)
        .args(["-hide_banner", "-h", "encoder=libx265"])
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains(DEPTH_PIX_FMT) {
        anyhow::bail!(
            "`{}` has no libx265 encoder with {DEPTH_PIX_FMT} (needed for depth video, as \
             lerobot 0.6 stores depth); install an ffmpeg built with a 12-bit x265 (Debian's \
             has one), or export depth as 16-bit PNG images (--lerobot-version 0.4, or \
             without --video)",
            exe.display()
        );
    }
    Ok(())
}

/// lerobot 0.6's depth quantization (`lerobot/datasets/depth_utils.py`, parameters in
/// metres, `DepthEncoderConfig`'s defaults): depth `d` becomes the 12-bit code
/// `rint(n * 4095)` clipped to [0, 4095], with `n = (ln(d + shift) − ln(min + shift)) /
/// (ln(max + shift) − ln(min + shift))` (log, the default) or `(d − min) / (max − min)`
/// (linear). Decoding inverts it and clamps to [min, max], so a 0 (no reading) comes back as
/// `min` (10 mm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthQuant {
    pub min_m: f64,
    pub max_m: f64,
    pub shift_m: f64,
    pub use_log: bool,
}

impl Default for DepthQuant {
    fn default() -> Self {
        DepthQuant {
            min_m: 0.01,
            max_m: 10.0,
            shift_m: 3.5,
            use_log: true,
        }
    }
}

impl DepthQuant {
    /// The code of a depth in millimetres. (lerobot computes in float32; at an exact
    /// half-code tie the two may differ by one code.)
    pub fn quantize(&self, mm: u16) -> u16 {
        let d = f64::from(mm);
        let (lo, hi, sh) = (self.min_m * 1e3, self.max_m * 1e3, self.shift_m * 1e3);
        let n = if self.use_log {
            ((d + sh).ln() - (lo + sh).ln()) / ((hi + sh).ln() - (lo + sh).ln())
        } else {
            (d - lo) / (hi - lo)
        };
        (n * f64::from(DEPTH_QMAX))
            .round_ties_even()
            .clamp(0.0, f64::from(DEPTH_QMAX)) as u16
    }

    /// The depth in millimetres a code stands for (lerobot's `dequantize_depth`).
    pub fn dequantize(&self, q: u16) -> f64 {
        let x = f64::from(q.min(DEPTH_QMAX)) / f64::from(DEPTH_QMAX);
        let m = if self.use_log {
            let (a, b) = (
                (self.min_m + self.shift_m).ln(),
                (self.max_m + self.shift_m).ln(),
            );
            (a + x * (b - a)).exp() - self.shift_m
        } else {
            self.min_m + x * (self.max_m - self.min_m)
        };
        m.clamp(self.min_m, self.max_m) * 1e3
    }

    /// A frame's codes as `gray12le` bytes.
    pub fn frame_bytes(&self, mm: &[u16]) -> Vec<u8> {
        mm.iter()
            .flat_map(|&v| self.quantize(v).to_le_bytes())
            .collect()
    }
}

/// One MP4 being written.
pub struct Encoder {
    child: Child,
    stdin: Option<ChildStdin>,
    path: PathBuf,
    frame_bytes: usize,
    pub frames: u64,
}

impl Encoder {
    /// An RGB camera's video: rgb24 frames in, `v`'s codec out (yuv420p).
    pub fn start(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        v: &VideoSettings,
    ) -> anyhow::Result<Self> {
        let out: Vec<String> = [
            "-c:v",
            v.codec.encoder(),
            "-preset",
            &v.preset,
            "-crf",
            &v.crf.to_string(),
            "-pix_fmt",
            "yuv420p",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Self::spawn(path, "rgb24", 3, width, height, fps, &out)
    }

    /// A depth camera's video as lerobot 0.6 writes one (`DepthEncoderConfig`'s defaults):
    /// 12-bit codes ([`DepthQuant::quantize`]) as `gray12le`, HEVC by libx265, lossless
    /// (`x265-params lossless=1`), so the only loss is the quantization's.
    /// `preset`: x265's (`ultrafast` … `placebo`; lossless either way, faster is bigger);
    /// `None` is x265's own default (medium), as lerobot leaves it.
    pub fn start_depth(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        preset: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut out: Vec<String> = [
            "-c:v",
            DEPTH_ENCODER,
            "-x265-params",
            "lossless=1:log-level=error",
            "-pix_fmt",
            DEPTH_PIX_FMT,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(p) = preset {
            out.extend(["-preset".to_string(), p.to_string()]);
        }
        Self::spawn(path, "gray12le", 2, width, height, fps, &out)
    }

    fn spawn(
        path: &Path,
        input_pix_fmt: &str,
        bytes_per_pixel: usize,
        width: u32,
        height: u32,
        fps: u32,
        codec_args: &[String],
    ) -> anyhow::Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        }
        let mut child = Command::new(ffmpeg())
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", input_pix_fmt])
            .args(["-s", &format!("{width}x{height}")])
            .args(["-framerate", &fps.to_string(), "-i", "-"])
            .args(codec_args)
            .args(["-bf", "0", "-g", "2"])
            .args(["-fps_mode", "cfr", "-use_editlist", "0"])
            .args(["-movflags", "+faststart"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting ffmpeg for {}: {e}", path.display()))?;
        let stdin = child.stdin.take();
        Ok(Encoder {
            child,
            stdin,
            path: path.to_path_buf(),
            frame_bytes: width as usize * height as usize * bytes_per_pixel,
            frames: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One frame: rgb24 bytes, or for a depth video the 12-bit codes as little-endian u16.
    pub fn push(&mut self, rgb: &[u8]) -> anyhow::Result<()> {
        if rgb.len() != self.frame_bytes {
            anyhow::bail!(
                "{}: frame of {} bytes, expected {} (camera resolution changed mid-episode?)",
                self.path.display(),
                rgb.len(),
                self.frame_bytes
            );
        }
        let stdin = self.stdin.as_mut().expect("open until finish");
        if let Err(e) = stdin.write_all(rgb) {
            let msg = self.stderr();
            anyhow::bail!("ffmpeg writing {}: {e}: {msg}", self.path.display());
        }
        self.frames += 1;
        Ok(())
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s.trim().to_string()
    }

    /// Close the input and wait for the file to be complete.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        drop(self.stdin.take());
        let msg = self.stderr();
        let st = self.child.wait()?;
        if !st.success() {
            anyhow::bail!("ffmpeg failed on {} ({st}): {msg}", self.path.display());
        }
        Ok(self.path.clone())
    }
}

/// Decode every frame of a video to RGB (for `demotape import`): calls `each(index, rgb)`.
pub fn decode_frames(
    path: &Path,
    width: u32,
    height: u32,
    each: impl FnMut(usize, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    decode_frames_as(path, width, height, "rgb24", 3, each)
}

/// Decode every frame of a depth video (lerobot 0.6's `gray12le` codes) to millimetres with
/// its quantizer: calls `each(index, mm)`.
pub fn decode_depth_frames(
    path: &Path,
    width: u32,
    height: u32,
    q: &DepthQuant,
    mut each: impl FnMut(usize, Vec<u16>) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    // the 4096 codes' depths, computed once
    let table: Vec<u16> = (0..=DEPTH_QMAX)
        .map(|c| q.dequantize(c).round().clamp(0.0, 65535.0) as u16)
        .collect();
    decode_frames_as(path, width, height, DEPTH_PIX_FMT, 2, |i, b| {
        let mm = b
            .chunks_exact(2)
            .map(|c| table[usize::from(u16::from_le_bytes([c[0], c[1]]).min(DEPTH_QMAX))])
            .collect();
        each(i, mm)
    })
}

fn decode_frames_as(
    path: &Path,
    width: u32,
    height: u32,
    pix_fmt: &str,
    bytes_per_pixel: usize,
    mut each: impl FnMut(usize, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let mut child = Command::new(ffmpeg())
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-vsync",
            "passthrough",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("ffmpeg (needed to import videos): {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let frame = width as usize * height as usize * bytes_per_pixel;
    let mut buf = vec![0u8; frame];
    let mut n = 0;
    loop {
        match out.read_exact(&mut buf) {
            Ok(()) => {
                each(n, &buf)?;
                n += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }
    let mut msg = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut msg);
    }
    let st = child.wait()?;
    if !st.success() {
        anyhow::bail!("ffmpeg could not decode {}: {}", path.display(), msg.trim());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_codes_round_trip_within_half_a_code() {
        let q = DepthQuant::default();
        assert_eq!(q.quantize(10), 0);
        assert_eq!(q.quantize(0), 0, "no reading clips to the nearest code");
        assert_eq!(q.quantize(10_000), DEPTH_QMAX);
        assert_eq!(q.quantize(60_000), DEPTH_QMAX);
        assert!((q.dequantize(0) - 10.0).abs() < 1e-9);
        let mut prev = 0;
        for mm in (10..10_000u16).step_by(7) {
            let c = q.quantize(mm);
            assert!(c >= prev, "codes grow with depth");
            prev = c;
            // half a code's width at this depth, in mm (log: the step grows with d + shift)
            let step = q.dequantize(c.saturating_add(1).min(DEPTH_QMAX)) - q.dequantize(c);
            let err = (q.dequantize(c) - f64::from(mm)).abs();
            assert!(
                err <= step.max(q.dequantize(c) - q.dequantize(c.saturating_sub(1))) / 2.0 + 1e-6,
                "{mm} mm -> code {c} -> {} mm",
                q.dequantize(c)
            );
        }
        // near range gets finer codes than far range (the log mapping's point)
        let near = q.dequantize(q.quantize(500) + 1) - q.dequantize(q.quantize(500));
        let far = q.dequantize(q.quantize(8000) + 1) - q.dequantize(q.quantize(8000));
        assert!(near < far / 2.0, "{near} {far}");
        // lerobot's numbers: ln(3.51) + 0.5 * (ln(13.5) - ln(3.51)) -> 6.883... m - 3.5 m
        let mid = q.dequantize(2048);
        assert!((mid - 3384.5).abs() < 2.0, "{mid}");
        let lin = DepthQuant {
            use_log: false,
            ..q
        };
        assert_eq!(lin.quantize(5005), 2048);
    }
}
