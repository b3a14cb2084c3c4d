//! LeRobot v3.0 datasets: export labeled episodes ([`export`]) and import existing datasets
//! back into episodes ([`import`]).
//!
//! The target is what `lerobot` 0.4.4 (`CODEBASE_VERSION = "v3.0"`) loads offline with
//! `LeRobotDataset(repo_id, root=dir)`; the facts it rests on are in
//! `shared/design/lerobot-v3.md` and were checked against a dataset written by lerobot 0.4.4
//! itself (column types, parquet metadata, stats keys).
//!
//! Layout written:
//! ```text
//! meta/info.json                               features, fps, totals, paths, demotape block
//! meta/stats.json                              min max mean std count q01 q10 q50 q90 q99
//! meta/tasks.parquet                           pandas frame indexed by the task string
//! meta/episodes/chunk-000/file-000.parquet     one row per episode (row i = episode i)
//! data/chunk-000/file-NNN.parquet              frames; a new file past --data-file-mb
//! videos/<key>/chunk-000/file-NNN.mp4          with --video: one file per episode
//! ```

pub mod arrow_io;
pub mod cdr;
pub mod export;
pub mod import;
pub mod stats;
pub mod video;

/// Files per chunk directory (lerobot's `DEFAULT_CHUNK_SIZE`).
pub const CHUNKS_SIZE: usize = 1000;

/// Phase names, in the order of `phase_index` (taxonomy.md); -1 = no label.
pub const PHASES: [&str; 9] = [
    "idle",
    "reach",
    "grasp",
    "lift",
    "transport",
    "place",
    "release",
    "retreat",
    "segment",
];
/// Outcome names, in the order of `episode_outcome_index`; -1 = no label.
pub const OUTCOMES: [&str; 4] = ["success", "slip", "drop", "miss"];
/// Where an episode's labels came from, in the order of `annotation_source_index`.
pub const SOURCES: [&str; 4] = ["none", "auto", "operator", "human"];

/// `data/chunk-CCC/file-FFF.parquet` for the n-th file.
pub fn data_path(n: usize) -> String {
    format!(
        "data/chunk-{:03}/file-{:03}.parquet",
        n / CHUNKS_SIZE,
        n % CHUNKS_SIZE
    )
}

/// `videos/<key>/chunk-CCC/file-FFF.mp4` for the n-th file of a camera.
pub fn video_path(key: &str, n: usize) -> String {
    format!(
        "videos/{key}/chunk-{:03}/file-{:03}.mp4",
        n / CHUNKS_SIZE,
        n % CHUNKS_SIZE
    )
}

/// Grid time of frame `k` at `fps`, in ns from the first frame: the same integer arithmetic
/// on export and import, so a re-export of an import lands exactly on the imported samples.
pub fn grid_offset_ns(k: u64, fps: u32) -> u64 {
    (u128::from(k) * 1_000_000_000 / u128::from(fps)) as u64
}

/// A camera's name from its topic: without the `/camera/` namespace, the image_transport
/// `/compressed` suffix and the ROS image topic name (`image_raw`, `image_rect_color`, ...),
/// sanitized: `/camera/head/image_raw` and `/camera/head/image_raw/compressed` → `head`,
/// `/camera/color/image_rect_raw` → `color`, `/camera/image/compressed` → `camera`; other
/// topics are sanitized whole.
pub fn camera_name(topic: &str) -> String {
    let Some(rest) = topic.strip_prefix("/camera/") else {
        return sanitize(topic);
    };
    let rest = rest.strip_suffix("/compressed").unwrap_or(rest);
    let names = [
        "/image_raw",
        "/image_rect_raw",
        "/image_rect_color",
        "/image_color",
        "/image_rect",
        "/image",
    ];
    if names.iter().any(|n| n[1..] == *rest) {
        // `/camera/image_raw`: the only camera
        return "camera".into();
    }
    let rest = names
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .unwrap_or(rest);
    sanitize(rest)
}

/// A camera feature key from a topic: `observation.images.<camera_name>`.
pub fn camera_key(topic: &str) -> String {
    format!("observation.images.{}", camera_name(topic))
}

/// Lowercase alphanumerics and `_`; everything else becomes `_`, no leading `_`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with('_') {
        out.remove(0);
    }
    if out.is_empty() { "x".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            camera_key("/camera/head/image_raw"),
            "observation.images.head"
        );
        assert_eq!(
            camera_key("/camera/wrist_right/image_raw"),
            "observation.images.wrist_right"
        );
        assert_eq!(camera_key("/front/rgb"), "observation.images.front_rgb");
        assert_eq!(
            camera_key("/camera/head/image_raw/compressed"),
            "observation.images.head"
        );
        assert_eq!(camera_name("/camera/color/image_rect_raw"), "color");
        assert_eq!(camera_name("/camera/head/depth/image_raw"), "head_depth");
        assert_eq!(camera_name("/camera/image_raw"), "camera");
        assert_eq!(camera_name("/camera/image/compressed"), "camera");
        assert_eq!(data_path(1001), "data/chunk-001/file-001.parquet");
        assert_eq!(grid_offset_ns(3, 30), 100_000_000);
        assert_eq!(grid_offset_ns(1, 30), 33_333_333);
    }
}
