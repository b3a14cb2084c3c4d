"""lerobot's own dataset tools and trainer on a demotape export, offline: every item of the
export iterates; `delete_episodes`, `split_dataset` and `merge_datasets` (lerobot.datasets.
dataset_tools) produce datasets that load and iterate; lerobot's trainer trains ACT for 2 steps
on CPU on each of them (lerobot_train_act.py).

usage: lerobot_tools.py DATASET WORKDIR

Needs lerobot (0.4.4 and 0.6.1 tested) and torch: run it from the venv of README's "LeRobot check".
"""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from lerobot.datasets.dataset_tools import delete_episodes, merge_datasets, split_dataset
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, work = Path(sys.argv[1]), Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)


def iterate(ds):
    n = 0
    for i in range(len(ds)):
        item = ds[i]
        assert "observation.state" in item and "action" in item, list(item)
        n += 1
    assert n == ds.num_frames, (n, ds.num_frames)
    return n


src = LeRobotDataset("demotape/export", root=root)
report = {"source": {"episodes": src.num_episodes, "frames": iterate(src)}}
assert src.num_episodes >= 3, "needs 3 episodes or more"

deleted = delete_episodes(src, [0], output_dir=work / "deleted", repo_id="demotape/deleted")
assert deleted.num_episodes == src.num_episodes - 1
report["deleted"] = {"episodes": deleted.num_episodes, "frames": iterate(deleted)}

n = src.num_episodes
parts = split_dataset(
    src, {"train": list(range(n - 1)), "val": [n - 1]}, output_dir=work / "split"
)
for name, ds in parts.items():
    report[f"split_{name}"] = {"episodes": ds.num_episodes, "frames": iterate(ds)}
assert parts["train"].num_episodes + parts["val"].num_episodes == n

merged = merge_datasets(
    [parts["train"], parts["val"]], output_repo_id="demotape/merged", output_dir=work / "merged"
)
assert merged.num_episodes == n and merged.num_frames == src.num_frames
report["merged"] = {"episodes": merged.num_episodes, "frames": iterate(merged)}

# lerobot's trainer, ACT on CPU (lerobot_train_act.py: depth features, which ACT's 3-channel
# backbone cannot take, are left out of its inputs)
trainer = Path(__file__).with_name("lerobot_train_act.py")
for name, ds_root in [
    ("source", root),
    ("deleted", work / "deleted"),
    ("split_train", work / "split" / "train"),
    ("merged", work / "merged"),
]:
    out = work / f"train_{name}"
    r = subprocess.run(
        [sys.executable, str(trainer), str(ds_root), str(out), f"demotape/{name}", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, f"lerobot's trainer on {name}: {r.stderr[-3000:]}"
    report[name]["trained_steps"] = 2
    report[name]["depth_left_out"] = json.loads(r.stdout.strip().splitlines()[-1])["depth_features_left_out"]
print(json.dumps(report))
