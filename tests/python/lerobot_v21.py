"""Rewrite a LeRobot v3.0 dataset (no videos) in the v2.1 layout, as lerobot < 0.3 wrote it,
with pandas/pyarrow only.

usage: lerobot_v21.py V30_DIR OUT_DIR

v2.1: `data/chunk-000/episode_NNNNNN.parquet` (one file per episode), `meta/info.json` with
`codebase_version` "v2.1" and the v2.1 path templates, `meta/episodes.jsonl` ({episode_index,
tasks, length}), `meta/tasks.jsonl` ({task_index, task}), feature names nested one list deep
(`"names": [[...]]`) as some v2.1 datasets have them. Prints {"episodes": n, "frames": n}.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

src, out = Path(sys.argv[1]), Path(sys.argv[2])
info = json.loads((src / "meta/info.json").read_text())
assert info["codebase_version"] == "v3.0", info["codebase_version"]
data = pd.concat([pq.read_table(p).to_pandas() for p in sorted((src / "data").rglob("*.parquet"))])
tasks = pd.read_parquet(src / "meta/tasks.parquet")
task_of = {int(i): t for t, i in zip(tasks.index, tasks["task_index"])}

(out / "data/chunk-000").mkdir(parents=True)
(out / "meta").mkdir()
keep = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]
episodes = []
for ep, rows in data.groupby("episode_index"):
    rows = rows[keep].reset_index(drop=True)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pq.write_table(table, out / f"data/chunk-000/episode_{int(ep):06d}.parquet")
    episodes.append({"episode_index": int(ep), "tasks": [task_of[int(rows["task_index"][0])]],
                     "length": len(rows)})
with open(out / "meta/episodes.jsonl", "w") as f:
    for e in episodes:
        f.write(json.dumps(e) + "\n")
with open(out / "meta/tasks.jsonl", "w") as f:
    for i, t in sorted(task_of.items()):
        f.write(json.dumps({"task_index": i, "task": t}) + "\n")
feats = {k: v for k, v in info["features"].items() if k in keep}
for k in ("observation.state", "action"):
    feats[k]["names"] = [feats[k]["names"]]
v21 = {
    "codebase_version": "v2.1",
    "robot_type": info["robot_type"],
    "total_episodes": len(episodes),
    "total_frames": len(data),
    "total_tasks": len(task_of),
    "total_videos": 0,
    "total_chunks": 1,
    "chunks_size": 1000,
    "fps": info["fps"],
    "splits": {"train": f"0:{len(episodes)}"},
    "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    "video_path": None,
    "features": feats,
}
(out / "meta/info.json").write_text(json.dumps(v21, indent=4))
print(json.dumps({"episodes": len(episodes), "frames": len(data)}))
