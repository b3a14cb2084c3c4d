"""Convert the iCub grasp dataset (shared/data/icub-grasp-tactile: hand-joint encoders and
fingertip taxels per time slice, one text file per trial) into demotape episodes, to annotate
and evaluate demotape on real touch data.

usage: icub_to_mcap.py DATASET_DIR OUT_DIR [--rate HZ]

Per trial `<object>_<n>.txt`, `OUT_DIR/<object>_<n>.mcap` (ROS 2 profile, CDR):
- /joint_states: the 9 hand joints (arm joints 7-15 of the iCub: `icub_j7` ... `icub_j15`),
  degrees converted to radians;
- /tactile/<finger>_tip (demotape_msgs/msg/TactileArray, 1 x 12): each fingertip's taxels
  as pressure = 255 - raw reading (the skin reads ~240-255 at rest, lower = more pressure;
  arbitrary units, not kPa);
- the `demotape.episode` metadata (task "icub grasp", robot "icub-hand").
and `<object>_<n>.reference.json`, what `demotape eval` scores against: outcome `miss` for the
"none" trials (the hand closed on nothing), `success` for every object (it closed on one;
the dataset says no more), and no phases (it has none).

The files carry no timestamps and the source states no rate: slices are stamped at --rate
(default 10 Hz), an assumption, said in the metadata. The "full_coke" trials, which the
author calls unreliable, are left out.

Needs the `mcap` and `mcap-ros2-support` packages (tests/python/requirements.txt).
"""

import json
import math
import sys
from pathlib import Path

from mcap_ros2.writer import Writer

SEP = "=" * 80 + "\n"
HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n" + SEP + \
    "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
JOINT_STATE = "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n" \
    "float64[] effort\n" + SEP + HEADER
TACTILE = "std_msgs/Header header\nstring pad\nuint32 rows\nuint32 cols\nfloat32 taxel_size\n" \
    "float32[] pressure\n" + SEP + HEADER
FINGERS = ["thumb", "index", "middle", "ring", "little"]
JOINTS = [f"icub_j{i}" for i in range(7, 16)]


def trials(path):
    vals = path.read_text().split("\n")
    rows = [[float(x) for x in line.split()] for line in vals if line.strip()]
    if not rows or rows[0] != [-10000.0]:
        raise SystemExit(f"{path}: does not start with the -10000 marker")
    rows = rows[1:]
    if len(rows) % 7:
        raise SystemExit(f"{path}: {len(rows)} lines after the marker, not a multiple of 7")
    for k in range(0, len(rows), 7):
        joints, _maxes, *taxels = rows[k:k + 7]
        if len(joints) != 9 or any(len(t) != 12 for t in taxels):
            raise SystemExit(f"{path}: slice {k // 7} has {len(joints)} joints / taxel rows "
                             f"{[len(t) for t in taxels]}, want 9 and 5 x 12")
        yield joints, taxels


def main():
    args = sys.argv[1:]
    rate = 10.0
    if "--rate" in args:
        i = args.index("--rate")
        rate = float(args[i + 1])
        del args[i:i + 2]
    src, out = Path(args[0]), Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    start = 1_700_000_000_000_000_000
    n = 0
    for f in sorted(src.glob("*.txt")):
        obj = f.stem.rsplit("_", 1)[0]
        if obj == "full_coke":
            continue
        slices = list(trials(f))
        stem = out / f.stem
        with open(stem.with_suffix(".mcap"), "wb") as fh:
            w = Writer(fh)
            js = w.register_msgdef("sensor_msgs/msg/JointState", JOINT_STATE)
            ta = w.register_msgdef("demotape_msgs/msg/TactileArray", TACTILE)
            t0 = start + n * 60_000_000_000
            for k, (joints, taxels) in enumerate(slices):
                t = t0 + int(round(k * 1e9 / rate))
                stamp = {"sec": t // 10**9, "nanosec": t % 10**9}
                w.write_message("/joint_states", js, {
                    "header": {"stamp": stamp, "frame_id": ""}, "name": JOINTS,
                    "position": [math.radians(x) for x in joints], "velocity": [], "effort": []},
                    log_time=t, publish_time=t)
                for finger, raw in zip(FINGERS, taxels):
                    w.write_message(f"/tactile/{finger}_tip", ta, {
                        "header": {"stamp": stamp, "frame_id": f"{finger}_tip"},
                        "pad": f"{finger}_tip", "rows": 1, "cols": 12, "taxel_size": 0.004,
                        "pressure": [max(0.0, 255.0 - x) for x in raw]},
                        log_time=t, publish_time=t)
            w._writer.add_metadata("demotape.episode", {
                "robot_id": "icub-hand", "episode_id": f.stem, "task": "icub grasp",
                "source": f"icub_grasp_dataset {f.name}", "start_ns": str(t0),
                "note": f"no timestamps in the source: slices stamped at an assumed {rate} Hz"})
            w.finish()
        ref = {"outcome": "miss" if obj == "none" else "success", "phases": [],
               "object": obj}
        stem.with_suffix(".reference.json").write_text(json.dumps(ref))
        n += 1
    print(json.dumps({"episodes": n, "rate_hz": rate, "out": str(out)}))


main()
