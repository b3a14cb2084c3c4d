"""Load a demotape export with lerobot's own LeRobotDataset, offline, and compare what
`dataset[i]` returns with the parquet data (and, for video exports, with an image export of
the same episodes).

usage: lerobot_load.py DATASET [IMAGE_DATASET_TO_COMPARE_VIDEO_FRAMES_WITH]

Needs lerobot==0.4.4 (and torch): run it from a venv that has them (README: "LeRobot check").
"""

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
checked = 0
worst_video_diff = 0.0
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
    for key in cams:
        img = item[key]
        h, w, _ = info["features"][key]["shape"]
        assert tuple(img.shape) == (3, h, w), (key, img.shape)
        assert img.dtype == torch.float32 and 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        if ref is not None:
            diff = float((img - ref[i][key]).abs().mean())
            worst_video_diff = max(worst_video_diff, diff)
            assert diff < 0.05, (i, key, diff)
    checked += 1
print(json.dumps({"loaded_frames": len(ds), "episodes": ds.num_episodes, "items_checked": checked,
                  "cameras": cams, "video_backend": ds.video_backend if ref is not None else None,
                  "worst_mean_abs_diff_video_vs_png": worst_video_diff}))
