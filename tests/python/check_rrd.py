"""Check a `demotape view --save` .rrd with the matching rerun-sdk 0.36.3 command line: `rerun
rrd verify` accepts it, and `rerun rrd print` lists the expected entity paths with as many
rows as the source MCAP has messages on the matching topic (counted with the `mcap` reader).

usage: check_rrd.py FILE.rrd SOURCE.mcap [SIDECAR.annotations.json]
Prints {"entities": n, "rows": {...}} as JSON; exits non-zero on a mismatch.
"""

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

from mcap.reader import make_reader

rrd, src = sys.argv[1], sys.argv[2]
cli = str(Path(sys.executable).parent / "rerun")
env = {"RERUN_ANALYTICS": "0", "PATH": "/usr/bin:/bin"}
ver = subprocess.run([cli, "--version"], capture_output=True, text=True, env=env).stdout
if "0.36.3" not in ver:
    sys.exit(f"need rerun 0.36.3, have {ver!r}")
v = subprocess.run([cli, "rrd", "verify", rrd], capture_output=True, text=True, env=env)
if v.returncode != 0:
    sys.exit(f"rerun rrd verify failed: {v.stdout}{v.stderr}")
p = subprocess.run([cli, "rrd", "print", rrd], capture_output=True, text=True, env=env)
if p.returncode != 0:
    sys.exit(f"rerun rrd print failed: {p.stderr}")
rows = collections.Counter()
for m in re.finditer(r"^Chunk\(\S+\) with (\d+) rows \([^)]*\) - (\S+) - ", p.stdout, re.M):
    rows[m.group(2)] += int(m.group(1))

counts = collections.Counter()
with open(src, "rb") as f:
    for _, channel, _ in make_reader(f).iter_messages():
        counts[channel.topic] += 1

expected = {}
for topic, n in counts.items():
    if m := re.fullmatch(r"/camera/(\w+)/image_raw", topic):
        expected[f"/camera/{m.group(1)}/rgb"] = n
    elif m := re.fullmatch(r"/camera/(\w+)/depth", topic):
        expected[f"/camera/{m.group(1)}/depth"] = n
    elif m := re.fullmatch(r"/tactile/(\w+)", topic):
        expected[f"/tactile/{m.group(1)}"] = n
    elif m := re.fullmatch(r"/wrist/(\w+)/wrench", topic):
        for c in ["force_x", "force_y", "force_z", "torque_x", "torque_y", "torque_z"]:
            expected[f"/wrench/{m.group(1)}/{c}"] = n
    elif topic == "/joint_states":
        for j in ["right_arm_joint1", "right_arm_joint7", "right_gripper_finger"]:
            for c in ["position", "velocity", "effort"]:
                expected[f"/joints/{j}/{c}"] = n
    elif topic == "/demotape/events":
        expected["/events"] = n
if len(sys.argv) > 3:
    side = json.loads(Path(sys.argv[3]).read_text())
    expected["/annotations/phases"] = len(side["phases"])
    expected["/annotations/outcome"] = 1
for path, n in expected.items():
    if rows.get(path) != n:
        sys.exit(f"{path}: {rows.get(path)} rows in the .rrd, {n} messages in the MCAP")
# the arm, decimated to 30 Hz from the joint states
arm = rows.get("/world/arm", 0)
js = counts["/joint_states"] / 500.0 * 30.0
if not (0.8 * js <= arm <= 1.05 * js + 1):
    sys.exit(f"/world/arm: {arm} rows, expected about {js:.0f} (30 Hz)")
for path in ["/world/arm/ee", "/world/arm/ee/gripper", "/world/force"]:
    if rows.get(path, 0) == 0:
        sys.exit(f"{path} missing")
if not any(k.startswith("/sync/") for k in rows):
    sys.exit("no sync quality entities")
print(json.dumps({"entities": len(rows), "checked": len(expected), "rows": dict(rows)}))
