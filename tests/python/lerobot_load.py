"""Load a demotape export with lerobot's own LeRobotDataset, offline, and compare what
`dataset[i]` returns with the parquet data (and, for video exports, with an image export of
the same episodes).

usage: lerobot_load.py DATASET [IMAGE_DATASET_TO_COMPARE_VIDEO_FRAMES_WITH]

Depth features (`--depth`) are checked in millimetres: PNG depth exactly against the parquet's
16-bit PNG, lerobot 0.6's depth video against the image dataset's PNG within half a 12-bit
code. lerobot 0.6's language columns (`--lerobot-version 0.6`): every item carries the
episode's subtask rows.

Needs lerobot==0.4.4 or 0.6.x (and torch): run it from a venv that has them (README:
"LeRobot check").
"""

import io
import math

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np
import pyarrow.parquet as pq
import torch
from pathlib import Path
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root = Path(sys.argv[1])
ds = LeRobotDataset("demotape/export", root=root)
info = json.loads((root / "meta/info.json").read_text())
assert ds.num_frames == info["total_frames"], (ds.num_frames, info["total_frames"])
assert ds.num_episodes == info["total_episodes"]
table = pq.read_table(sorted((root / "data").rglob("*.parquet"))[0]).to_pandas()
cams = [k for k, f in info["features"].items() if f["dtype"] in ("image", "video")]
ref = None
if len(sys.argv) > 2:
    ref = LeRobotDataset("demotape/export-images", root=Path(sys.argv[2]))
    ref_table = pq.read_table(sorted((Path(sys.argv[2]) / "data").rglob("*.parquet"))[0]).to_pandas()
checked = 0
worst_video_diff = 0.0
depth_checked = 0
worst_depth_err_mm = 0.0
language_checked = 0


def png_mm(b):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(b))).astype(np.float64)

for i in list(range(0, min(len(ds), len(table)), max(1, len(table) // 40))) + [len(table) - 1]:
    item = ds[i]
    row = table.iloc[i]
    for key in ("observation.state", "action"):
        got = item[key].numpy()
        want = np.asarray(row[key], dtype=np.float32)
        assert np.array_equal(got, want), (i, key, got[:4], want[:4])
    assert int(item["index"]) == int(row["index"]) and int(item["frame_index"]) == int(row["frame_index"])
    assert int(item["phase_index"]) == int(row["phase_index"])
    assert isinstance(item["task"], str) and item["task"], item["task"]
    if "language_persistent" in info["features"]:
        rows = item.get("language_persistent")
        want = [r["content"] for r in row["language_persistent"] if r["style"] == "subtask"]
        got = [r["content"] for r in rows if r["style"] == "subtask"] if rows is not None else None
        assert got == want and want, (i, got, want)
        language_checked += 1
    for key in cams:
        img = item[key]
        h, w, _ = info["features"][key]["shape"]
        finfo = info["features"][key].get("info") or {}
        if finfo.get("is_depth_map"):
            # millimetres, one channel, float32 (lerobot 0.6) or int (0.4.4's ToTensor of I;16)
            assert tuple(img.shape) == (1, h, w), (key, img.shape)
            got = img.double().numpy()[0]
            if info["features"][key]["dtype"] == "image":
                want = png_mm(row[key]["bytes"])
                assert np.array_equal(got, want), (i, key)
            elif ref is not None:
                rt = ref_table.iloc[i]
                want = png_mm(rt[key]["bytes"])
                lo, hi, sh = finfo["video.depth_min"], finfo["video.depth_max"], finfo["video.shift"]
                clipped = np.clip(want, lo * 1000, hi * 1000)
                # half a code, and lerobot rounds millimetre output to whole millimetres
                half = 0.5 * (math.log(hi + sh) - math.log(lo + sh)) / 4095 * (clipped + sh * 1000) * 1.001 + 0.5
                err = np.abs(got - clipped)
                worst_depth_err_mm = max(worst_depth_err_mm, float(err.max()))
                assert (err <= half).all(), (i, key, float(err.max()))
            depth_checked += 1
            continue
        assert tuple(img.shape) == (3, h, w), (key, img.shape)
        assert img.dtype == torch.float32 and 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        if ref is not None and info["features"][key]["dtype"] == "video":
            diff = float((img - ref[i][key]).abs().mean())
            worst_video_diff = max(worst_video_diff, diff)
            assert diff < 0.05, (i, key, diff)
    checked += 1
print(json.dumps({"loaded_frames": len(ds), "episodes": ds.num_episodes, "items_checked": checked,
                  "cameras": cams, "video_backend": getattr(ds, "video_backend", None) if ref is not None else None,
                  "worst_mean_abs_diff_video_vs_png": worst_video_diff,
                  "depth_items_checked": depth_checked, "worst_depth_video_err_mm": worst_depth_err_mm,
                  "language_items_checked": language_checked}))
