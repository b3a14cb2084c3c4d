"""Check a LeRobot v3.0 export by demotape against its source MCAP episodes, with third-party
readers only (pandas, pyarrow, mcap + mcap-ros2-support, av): no demotape code.

usage: check_lerobot.py DATASET

Prints one JSON document with what was checked; exits non-zero on the first mismatch.
"""

import bisect
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


root = Path(sys.argv[1])
info = json.loads((root / "meta/info.json").read_text())
fps = info["fps"]
feats = info["features"]
assert info["codebase_version"] == "v3.0"
report = {"episodes": 0, "frames": 0, "values_checked": 0, "interpolated": 0, "exact": 0,
          "images_checked": 0, "video_frames_checked": 0, "jpeg_frames_checked": 0,
          "jpeg_max_mean_abs_diff": 0.0, "depth_images_checked": 0, "depth_video_frames_checked": 0,
          "depth_video_max_err_mm": 0.0}

# tasks: a pandas frame indexed by the task string
tasks = pd.read_parquet(root / "meta/tasks.parquet")
if not all(isinstance(t, str) for t in tasks.index):
    fail(f"tasks.parquet index is not task strings: {list(tasks.index)!r}")
if list(tasks["task_index"]) != list(range(len(tasks))):
    fail("task_index is not 0..n-1")
task_of = {int(i): t for t, i in zip(tasks.index, tasks["task_index"])}
report["tasks"] = list(tasks.index)

episodes = pd.concat(
    [pd.read_parquet(p) for p in sorted((root / "meta/episodes").rglob("*.parquet"))]
).reset_index(drop=True)
if list(episodes["episode_index"]) != list(range(info["total_episodes"])):
    fail("meta/episodes rows are not episodes 0..n-1")

data_files = sorted((root / "data").rglob("*.parquet"))
tables = [pq.read_table(p) for p in data_files]
non_video = [k for k, f in feats.items() if f["dtype"] != "video"]
for p, t in zip(data_files, tables):
    if sorted(t.column_names) != sorted(non_video):
        fail(f"{p}: columns {t.column_names} != non-video features {non_video}")
data = pd.concat([t.to_pandas() for t in tables]).reset_index(drop=True)
if len(data) != info["total_frames"]:
    fail(f"{len(data)} rows, info.json says {info['total_frames']}")
if list(data["index"]) != list(range(len(data))):
    fail("index is not the global row number")

state_names = feats["observation.state"]["names"]
action_names = feats["action"]["names"]
action_src = info["demotape"]["action_source"]
cams = [k for k, f in feats.items() if f["dtype"] in ("image", "video")]


def read_mcap(path):
    """Per topic: sorted (log_time, decoded message), over the episode's later parts too
    (the recorder's `demotape.split` metadata names each part's successor)."""
    out = {}
    path = Path(path)
    while path is not None:
        nxt = None
        with open(path, "rb") as f:
            r = make_reader(f, decoder_factories=[DecoderFactory()])
            for schema, channel, message, ros in r.iter_decoded_messages():
                out.setdefault(channel.topic, []).append((message.log_time, ros))
            for md in r.iter_metadata():
                if md.name == "demotape.split" and md.metadata.get("next_part"):
                    nxt = path.with_name(md.metadata["next_part"])
        path = nxt
    for v in out.values():
        v.sort(key=lambda x: x[0])
    return out


def interp(series, t):
    """series: (times, values[n, d]) sorted; linear interpolation at t (clamped)."""
    ts, vs = series
    i = bisect.bisect_left(ts, t)
    if i < len(ts) and ts[i] == t:
        return vs[i], True
    if i == 0:
        return vs[0], True
    if i == len(ts):
        return vs[-1], True
    a = (t - ts[i - 1]) / (ts[i] - ts[i - 1])
    return vs[i - 1] + (vs[i] - vs[i - 1]) * a, False


def is_depth(key):
    return bool((feats[key].get("info") or {}).get("is_depth_map"))


def mcap_depth_mm(m):
    """A sensor_msgs/Image depth map in millimetres (REP 118: 16UC1 mm, 32FC1 m)."""
    order = ">" if m.is_bigendian else "<"
    if m.encoding in ("16UC1", "mono16"):
        rows = np.frombuffer(bytes(m.data), dtype=np.uint8).reshape(m.height, m.step)
        return rows[:, : m.width * 2].copy().view(order + "u2").astype(np.float64)
    if m.encoding == "32FC1":
        rows = np.frombuffer(bytes(m.data), dtype=np.uint8).reshape(m.height, m.step)
        v = rows[:, : m.width * 4].copy().view(order + "f4").astype(np.float64) * 1000.0
        return np.where(np.isfinite(v) & (v > 0) & (v <= 65535), np.rint(v), 0.0)
    fail(f"depth encoding {m.encoding}")


def depth_decode_mm(codes, vi):
    """lerobot 0.6's dequantization (depth_utils.dequantize_depth), written from its docs:
    12-bit codes back to millimetres with the info.json parameters (metres)."""
    lo, hi, sh = vi["video.depth_min"], vi["video.depth_max"], vi["video.shift"]
    x = codes.astype(np.float64) / 4095.0
    if vi["video.use_log"]:
        a, b = np.log(lo + sh), np.log(hi + sh)
        m = np.exp(a + x * (b - a)) - sh
    else:
        m = lo + x * (hi - lo)
    return np.clip(m, lo, hi) * 1000.0


def depth_half_code_mm(want_mm, vi):
    """Half a code's width at each depth: the most the quantization may be off."""
    lo, hi, sh = vi["video.depth_min"], vi["video.depth_max"], vi["video.shift"]
    if vi["video.use_log"]:
        return 0.5 * (np.log(hi + sh) - np.log(lo + sh)) / 4095.0 * (want_mm + sh * 1000.0) * 1.001
    return np.full_like(want_mm, 0.5 * (hi - lo) * 1000.0 / 4095.0 * 1.001)


def check_close(got, want, what, exact):
    want32 = np.asarray(want, dtype=np.float64).astype(np.float32)
    got = np.asarray(got, dtype=np.float32)
    if exact:
        if not np.array_equal(got, want32):
            fail(f"{what}: {got[:6]} != {want32[:6]} (exact)")
    elif not np.allclose(got, want32, rtol=1e-5, atol=1e-6):
        bad = np.argmax(np.abs(got - want32))
        fail(f"{what}: dim {bad} {got[bad]} != {want32[bad]}")


video_pts = {}
video_eps = {}
depth_video_checks = {}
depth_codes = {}
for _, ep in episodes.iterrows():
    e = int(ep["episode_index"])
    rows = data[data["episode_index"] == e].sort_values("frame_index")
    if len(rows) != ep["length"] or rows["index"].iloc[0] != ep["dataset_from_index"]:
        fail(f"episode {e}: rows do not match meta/episodes")
    if ep["tasks"][0] != task_of[int(rows["task_index"].iloc[0])]:
        fail(f"episode {e}: task mismatch")
    # timestamps on the 1/fps grid
    ts = rows["timestamp"].to_numpy()
    if not np.allclose(ts, np.arange(len(rows), dtype=np.float64) / fps, atol=1e-6):
        fail(f"episode {e}: timestamps are not frame_index / fps")
    src = read_mcap(ep["demotape/source_file"])
    t0 = int(ep["demotape/start_ns"])
    js = src["/joint_states"]
    # per joint: several publishers (arm, gripper) may share the topic, each with its joints
    per_joint = {}
    for t, m in js:
        for jn, p in zip(m.name, m.position):
            per_joint.setdefault(jn, ([], []))
            per_joint[jn][0].append(t)
            per_joint[jn][1].append([p])
    names = [sn[: -len(".pos")] for sn in state_names if sn.endswith(".pos")]
    if sorted(names) != sorted(per_joint):
        fail(f"episode {e}: state joints {names} != joints in the MCAP {sorted(per_joint)}")
    joint_series = [(per_joint[jn][0], np.array(per_joint[jn][1], dtype=np.float64)) for jn in names]

    def joints_at(t):
        vals, exact = [], True
        for series in joint_series:
            v, ex = interp(series, t)
            vals.append(v)
            exact = exact and ex
        return np.concatenate(vals), exact
    extra = []
    for topic, msgs in sorted(src.items()):
        if topic.endswith("/wrench") and any(n.startswith(topic.strip("/").replace("/wrench", "").replace("/", "_") + ".") for n in state_names):
            extra.append(([t for t, _ in msgs], np.array([[m.wrench.force.x, m.wrench.force.y, m.wrench.force.z,
                                                           m.wrench.torque.x, m.wrench.torque.y, m.wrench.torque.z] for _, m in msgs])))
    for topic, msgs in sorted(src.items()):
        if topic.startswith("/tactile/") and f"tactile.{topic.split('/')[-1]}.mean_kpa" in state_names:
            extra.append(([t for t, _ in msgs], np.array([[np.mean(np.asarray(m.pressure, dtype=np.float64))] for _, m in msgs])))
    if [f"{n}.pos" for n in names] != state_names[: len(names)]:
        fail(f"episode {e}: state names {state_names[:3]} do not start with the joints {names[:3]}")
    states = np.stack(rows["observation.state"].to_numpy())
    actions = np.stack(rows["action"].to_numpy())
    n = len(rows)
    grid = [t0 + k * 10**9 // fps for k in range(n)]
    for k, t in enumerate(grid):
        want, exact = joints_at(t)
        parts = [want]
        for s in extra:
            v, ex2 = interp(s, t)
            parts.append(v)
            exact = exact and ex2
        check_close(states[k], np.concatenate(parts), f"episode {e} frame {k} observation.state", exact)
        report["exact" if exact else "interpolated"] += 1
        if action_src == "next_state":
            wa, exa = joints_at(grid[min(k + 1, n - 1)])
            check_close(actions[k], wa, f"episode {e} frame {k} action", exa)
        report["values_checked"] += states.shape[1] + actions.shape[1]
    # cameras: the nearest frame to each grid time
    for key in cams:
        name = key.split('.')[-1]
        depth = is_depth(key)
        # /camera/<name>/image_raw, or image_transport's /camera/<name>/image_raw/compressed;
        # a depth feature <name>_depth from /camera/<name>/depth...
        if depth:
            base = name[: -len("_depth")]
            topic = next(t for t in sorted(src) if t.startswith(f"/camera/{base}/") and "depth" in t)
            if feats[key]["shape"][2] != 1:
                fail(f"{key}: depth shape {feats[key]['shape']}, want [h, w, 1]")
        else:
            topic = next(t for t in sorted(src) if t.startswith(f"/camera/{name}/") and "depth" not in t)
        frames = src[topic]
        ftimes = [t for t, _ in frames]
        worst = 0
        for k in range(0, n, 7):
            t = grid[k]
            i = bisect.bisect_left(ftimes, t)
            cands = [j for j in (i - 1, i) if 0 <= j < len(ftimes)]
            j = min(cands, key=lambda j: (abs(ftimes[j] - t), ftimes[j]))
            worst = max(worst, abs(ftimes[j] - t))
            m = frames[j][1]
            from PIL import Image  # installed with lerobot-doctor
            if depth:
                want = mcap_depth_mm(m)
                if feats[key]["dtype"] == "image":
                    img = Image.open(io.BytesIO(rows[key].iloc[k]["bytes"]))
                    got = np.asarray(img).astype(np.float64)
                    if img.mode not in ("I;16", "I") or not np.array_equal(got, want):
                        fail(f"episode {e} frame {k} {key}: 16-bit PNG ({img.mode}) differs from the "
                             f"nearest MCAP depth frame")
                    report["depth_images_checked"] += 1
                else:
                    depth_video_checks.setdefault(key, []).append((e, k, want))
                continue
            jpeg = hasattr(m, "format")  # sensor_msgs/CompressedImage
            if jpeg:
                # decoded by Pillow (libjpeg-turbo); demotape decodes with zune-jpeg: the two
                # may differ by rounding, never by picture
                want = np.asarray(Image.open(io.BytesIO(bytes(m.data))).convert("RGB"))
            else:
                want = np.frombuffer(bytes(m.data), dtype=np.uint8).reshape(m.height, m.width, 3)
            if feats[key]["dtype"] == "image":
                got = np.asarray(Image.open(io.BytesIO(rows[key].iloc[k]["bytes"])).convert("RGB"))
                if got.shape != want.shape:
                    fail(f"episode {e} frame {k} {key}: {got.shape} != MCAP frame {want.shape}")
                if jpeg:
                    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
                    mean = float(diff.mean())
                    report["jpeg_max_mean_abs_diff"] = max(report["jpeg_max_mean_abs_diff"], mean)
                    if mean > 1.0 or int(diff.max()) > 16:
                        fail(f"episode {e} frame {k} {key}: PNG differs from Pillow's decoding of "
                             f"the nearest MCAP JPEG (mean {mean:.2f}, max {int(diff.max())})")
                    report["jpeg_frames_checked"] += 1
                elif not np.array_equal(got, want):
                    fail(f"episode {e} frame {k} {key}: PNG differs from the nearest MCAP frame")
                report["images_checked"] += 1
        col = f"demotape/camera_offset_ms_max/{key}"
        if abs(ep[col] - worst / 1e6) > 1e-6 and worst / 1e6 > ep[col] + 1e-6:
            fail(f"episode {e} {key}: reported max offset {ep[col]} ms < seen {worst / 1e6} ms")
        if feats[key]["dtype"] == "video":
            import av
            vp = root / info["video_path"].format(video_key=key, chunk_index=int(ep[f"videos/{key}/chunk_index"]),
                                                  file_index=int(ep[f"videos/{key}/file_index"]))
            if vp not in video_pts:
                with av.open(str(vp)) as c:
                    s = c.streams.video[0]
                    video_pts[vp] = [float(fr.pts * s.time_base) for fr in c.decode(s)]
            video_eps.setdefault(vp, []).append(e)
            # lerobot's layout: this episode is [from_timestamp, to_timestamp) of the file
            lo, hi = float(ep[f"videos/{key}/from_timestamp"]), float(ep[f"videos/{key}/to_timestamp"])
            pts = [p for p in video_pts[vp] if lo - 1e-4 <= p < hi - 1e-4]
            want_pts = [lo + k / fps for k in range(n)]
            if len(pts) != n or not np.allclose(pts, want_pts, atol=1e-4):
                fail(f"{vp}: {len(pts)} frames in [{lo}, {hi}) with pts {pts[:3]}..., want {n} at from + k/fps")
            report["video_frames_checked"] += len(pts)
            if depth:
                # the frames lerobot 0.6 decodes (gray12le), dequantized, against the MCAP
                if vp not in depth_codes:
                    with av.open(str(vp)) as c:
                        s = c.streams.video[0]
                        if s.codec_context.name != "hevc" or s.format.name != "gray12le":
                            fail(f"{vp}: {s.codec_context.name} {s.format.name}, want hevc gray12le")
                        depth_codes[vp] = [fr.to_ndarray(format="gray12le") for fr in c.decode(s)]
                first = round(lo * fps)
                vi = feats[key]["info"]
                for (e2, k, want) in depth_video_checks.pop(key, []):
                    got = depth_decode_mm(depth_codes[vp][first + k], vi)
                    clipped = np.clip(want, vi["video.depth_min"] * 1000, vi["video.depth_max"] * 1000)
                    err = np.abs(got - clipped)
                    if (err > depth_half_code_mm(clipped, vi)).any():
                        bad = np.unravel_index(np.argmax(err - depth_half_code_mm(clipped, vi)), err.shape)
                        fail(f"episode {e} frame {k} {key}: depth {got[bad]:.1f} mm at {bad}, "
                             f"MCAP {want[bad]:.0f} mm: more than half a code off")
                    report["depth_video_max_err_mm"] = max(report["depth_video_max_err_mm"], float(err.max()))
                    report["depth_video_frames_checked"] += 1
    report["episodes"] += 1
    report["frames"] += n
report["video_files"] = len(video_pts)
report["episodes_per_video_file_max"] = max((len(v) for v in video_eps.values()), default=0)
for vp, eps in video_eps.items():
    ends = sorted(float(episodes.iloc[x][f"videos/{vp.parent.parent.name}/to_timestamp"]) for x in eps)
    if abs(len(video_pts[vp]) / fps - ends[-1]) > 1e-3:
        fail(f"{vp}: {len(video_pts[vp])} frames, but its last episode ends at {ends[-1]} s")

stats = json.loads((root / "meta/stats.json").read_text())
for k in feats:
    if feats[k]["dtype"] == "language":
        continue  # lerobot computes no statistics of language columns
    for s in ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]:
        if s not in stats.get(k, {}):
            fail(f"stats.json: {k} has no {s}")
st = np.stack(data["observation.state"].to_numpy())
if not np.allclose(stats["observation.state"]["mean"], st.mean(axis=0), rtol=1e-4, atol=1e-5):
    fail("stats.json observation.state mean differs from the data")
if not np.allclose(stats["observation.state"]["q50"], np.quantile(st, 0.5, axis=0), rtol=1e-4, atol=1e-5):
    fail("stats.json observation.state q50 differs from the data")

# per-episode statistics in meta/episodes, as lerobot's `save_episode` flattens them
# (`stats/<feature>/<stat>`): every feature, every statistic, and they agree with the data
STATS = ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]
ep_table = pq.read_table(sorted((root / "meta/episodes").rglob("*.parquet"))[0])
for k, f in feats.items():
    if f["dtype"] in ("string", "language"):
        continue
    for s_ in STATS:
        col = f"stats/{k}/{s_}"
        if col not in episodes.columns:
            fail(f"meta/episodes has no column {col}")
        field = ep_table.schema.field(col)
        if not str(field.type).startswith("list<element:"):
            fail(f"{col}: type {field.type}, want a list with 'element' children")
checked = 0
for _, ep in episodes.iterrows():
    e = int(ep["episode_index"])
    rows = data[data["episode_index"] == e]
    for k, f in feats.items():
        if f["dtype"] in ("image", "video") and is_depth(k):
            # lerobot 0.6: depth stats in the recorded unit (mm), one channel
            arr = np.array([[[float(x) for x in c] for c in ch] for ch in ep[f"stats/{k}/mean"]])
            mx = np.array([[[float(x) for x in c] for c in ch] for ch in ep[f"stats/{k}/max"]])
            if arr.shape != (1, 1, 1) or not (0 < arr[0, 0, 0] <= mx[0, 0, 0] <= 65535):
                fail(f"episode {e}: stats/{k}/mean {arr.tolist()} max {mx.tolist()} is not [1][1][1] mm")
            continue
        if f["dtype"] in ("image", "video"):
            arr = np.array([[[float(x) for x in c] for c in ch] for ch in ep[f"stats/{k}/mean"]])
            if arr.shape != (3, 1, 1) or not ((arr >= 0) & (arr <= 1)).all():
                fail(f"episode {e}: stats/{k}/mean {arr.tolist()} is not [3][1][1] in [0, 1]")
            if int(ep[f"stats/{k}/count"][0]) <= 0:
                fail(f"episode {e}: stats/{k}/count is not positive")
            continue
        if f["dtype"] in ("string", "language"):
            continue
        v = np.stack(rows[k].to_numpy()) if f["shape"] != [1] or isinstance(rows[k].iloc[0], np.ndarray) \
            else rows[k].to_numpy()[:, None]
        v = v.astype(np.float64).reshape(len(rows), -1)
        if int(ep[f"stats/{k}/count"][0]) != len(rows):
            fail(f"episode {e}: stats/{k}/count {ep[f'stats/{k}/count']} != {len(rows)} rows")
        for s_, want in [("min", v.min(0)), ("max", v.max(0)), ("mean", v.mean(0)), ("std", v.std(0)),
                         ("q01", np.quantile(v, 0.01, 0)), ("q50", np.quantile(v, 0.5, 0)),
                         ("q99", np.quantile(v, 0.99, 0))]:
            got = np.asarray(ep[f"stats/{k}/{s_}"], dtype=np.float64)
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                fail(f"episode {e}: stats/{k}/{s_} = {got[:4]} differs from its rows: {want[:4]}")
            checked += 1
report["episode_stats_checked"] = checked

# lerobot 0.6's language columns, when exported for it: the schema of
# lerobot/datasets/language.py, the persistent slice broadcast to every frame of an episode,
# one subtask row per phase at its start
lang = {k for k, f in feats.items() if f["dtype"] == "language"}
report["language_rows_checked"] = 0
if lang:
    if lang != {"language_persistent", "language_events"}:
        fail(f"language features {lang}")
    schema = tables[0].schema
    want_p = ("list<element: struct<role: string not null, content: string, style: string, "
              "timestamp: float not null, camera: string, tool_calls: list<element: string>>>")
    want_e = ("list<element: struct<role: string not null, content: string, style: string, "
              "camera: string, tool_calls: list<element: string>>>")
    for col, want in [("language_persistent", want_p), ("language_events", want_e)]:
        if str(schema.field(col).type) != want:
            fail(f"{col}: {schema.field(col).type}, want {want}")
    phase_names = info["demotape"]["phase_index"]
    for e in range(info["total_episodes"]):
        rows = data[data["episode_index"] == e].sort_values("frame_index")
        first = list(rows["language_persistent"].iloc[0])
        for lp in rows["language_persistent"]:
            if list(lp) != first:
                fail(f"episode {e}: the persistent language slice differs between frames")
        for le in rows["language_events"]:
            if len(le) != 0:
                fail(f"episode {e}: unexpected language events {le}")
        subtasks = [r for r in first if r["style"] == "subtask"]
        for r in first:
            if r["role"] != "assistant" or r["camera"] is not None or r["style"] not in ("subtask", "memory"):
                fail(f"episode {e}: language row {r}")
        # every phase run in phase_index starts at a frame at or just after its subtask row
        ph = rows["phase_index"].to_numpy()
        ts = rows["timestamp"].to_numpy()
        starts = [k for k in range(len(ph)) if ph[k] >= 0 and (k == 0 or ph[k] != ph[k - 1])]
        for k in starts:
            name = info["demotape"].get("subtask_text", {}).get(phase_names[int(ph[k])], phase_names[int(ph[k])])
            ok = any(r["content"] == name and ts[k] - 1.0 / fps - 1e-4 <= r["timestamp"] <= ts[k] + 1e-4
                     for r in subtasks)
            if not ok:
                fail(f"episode {e}: phase {name} starts at frame {k} ({ts[k]:.3f} s) without its subtask row: "
                     f"{[(r['content'], r['timestamp']) for r in subtasks]}")
            report["language_rows_checked"] += 1
        outcome = episodes.iloc[e]["demotape/outcome"]
        if outcome and not any(r["style"] == "memory" and r["content"] == f"outcome: {outcome}" for r in first):
            fail(f"episode {e}: no memory row for its outcome {outcome}")
tt = pq.read_table(root / "meta/tasks.parquet")
if str(tt.schema.field("__index_level_0__").type) != "string":
    fail(f"tasks.parquet index type {tt.schema.field('__index_level_0__').type}, lerobot writes string")
if str(ep_table.schema.field("tasks").type) != "list<element: string>":
    fail(f"meta/episodes tasks type {ep_table.schema.field('tasks').type}")
print(json.dumps(report))
