"""Train lerobot's ACT for a few steps on CPU on a LeRobot dataset, offline — with lerobot's
own trainer (`lerobot.scripts.lerobot_train.train`), as `lerobot-train --policy.type=act`
would, but with depth features (`is_depth_map`) left out of the policy's inputs: ACT's
ResNet backbone takes 3-channel images only, and lerobot infers every visual feature as an
input. RGB cameras, state and action are used as lerobot infers them.

usage: lerobot_train_act.py DATASET OUTPUT_DIR REPO_ID [STEPS]

Needs lerobot (0.4.4 or 0.6.x) and torch (README: "LeRobot check").
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import draccus
from lerobot.configs.train import TrainPipelineConfig
from lerobot.configs.types import FeatureType
from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
from lerobot.scripts.lerobot_train import train

try:  # lerobot 0.6
    from lerobot.utils.feature_utils import dataset_to_policy_features
except ImportError:  # lerobot 0.4.4
    from lerobot.datasets.utils import dataset_to_policy_features

root, out, repo_id = sys.argv[1], sys.argv[2], sys.argv[3]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 2
meta = LeRobotDatasetMetadata(repo_id, root=root)
depth = sorted(k for k, f in meta.features.items() if (f.get("info") or {}).get("is_depth_map"))
cfg = draccus.parse(
    config_class=TrainPipelineConfig,
    args=[
        "--policy.type=act",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        # offline: no ImageNet weights to download; the backbone starts untrained
        "--policy.pretrained_backbone_weights=null",
        f"--dataset.repo_id={repo_id}",
        f"--dataset.root={root}",
        f"--steps={steps}",
        "--batch_size=2",
        "--num_workers=0",
        "--save_checkpoint=false",
        "--wandb.enable=false",
        f"--output_dir={out}",
    ],
)
if depth:
    feats = dataset_to_policy_features(meta.features)
    cfg.policy.output_features = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    cfg.policy.input_features = {
        k: f for k, f in feats.items() if f.type is not FeatureType.ACTION and k not in depth
    }
train(cfg)
print(json.dumps({"trained_steps": steps, "depth_features_left_out": depth}))
