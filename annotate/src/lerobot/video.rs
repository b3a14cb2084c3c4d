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

/// One MP4 being written.
pub struct Encoder {
    child: Child,
    stdin: Option<ChildStdin>,
    path: PathBuf,
    frame_bytes: usize,
    pub frames: u64,
}

impl Encoder {
    pub fn start(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        v: &VideoSettings,
    ) -> anyhow::Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        }
        let mut child = Command::new(ffmpeg())
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}")])
            .args(["-framerate", &fps.to_string(), "-i", "-"])
            .args(["-c:v", v.codec.encoder(), "-preset", &v.preset])
            .args(["-crf", &v.crf.to_string()])
            .args(["-bf", "0", "-g", "2", "-pix_fmt", "yuv420p"])
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
            frame_bytes: width as usize * height as usize * 3,
            frames: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

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
    mut each: impl FnMut(usize, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let mut child = Command::new(ffmpeg())
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-vsync",
            "passthrough",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("ffmpeg (needed to import videos): {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let frame = width as usize * height as usize * 3;
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
