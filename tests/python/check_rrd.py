"""Check a `demotape view --save` .rrd with the matching rerun-sdk 0.36.3: its command line
`rerun rrd verify` accepts it, and `rerun rrd print` lists the expected entity paths with as
many rows as the source MCAP has messages on the matching topic (counted with the `mcap`
reader). The default layout is read back with rerun-sdk's own RRD reader: a blueprint store
whose views show entities that really are in the recording.

usage: check_rrd.py FILE.rrd SOURCE.mcap [SIDECAR.annotations.json]
       check_rrd.py FILE.rrd --live REPORT.json   (a `view --live --json` report: every row
                                                   it logged is in the file, and a layout)
       check_rrd.py FILE.rrd --rows               (verify, and only list the rows per entity:
                                                   for recordings that are not the simulator's)
Prints {"entities": n, "rows": {...}, "views": [...]} as JSON; exits non-zero on a mismatch.
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
    if not m.group(2).startswith(("/view/", "/container/", "/viewport", "/time_panel")):
        rows[m.group(2)] += int(m.group(1))


def layout(rrd):
    """(kind, name, origin) of every view in the file's blueprint store."""
    from rerun.experimental import RrdReader

    r = RrdReader(rrd)
    stores = r.blueprints()
    if len(stores) != 1:
        sys.exit(f"expected one blueprint store, found {len(stores)}")
    views = {}
    for c in r.stream(store=stores[0]):
        parts = c.entity_path.strip("/").split("/")
        if parts[0] != "view" or len(parts) != 2:
            continue
        b = c.to_record_batch()
        last = {k.split(":")[1]: b.column(k).to_pylist()[-1] for k in b.schema.names if k.startswith("ViewBlueprint:")}
        first = lambda v: v[0] if isinstance(v, list) else v
        views[parts[1]] = (first(last["class_identifier"]), first(last["display_name"]), first(last["space_origin"]))
    return sorted(views.values())


views = layout(rrd)
if not views:
    sys.exit("the blueprint has no views")
for kind, name, origin in views:
    # every view shows something that is really there
    if not any(e == origin or e.startswith(origin.rstrip("/") + "/") for e in rows):
        sys.exit(f"view {name!r} ({kind}) has origin {origin} but no entity lives there")
kinds = collections.Counter(k for k, _, _ in views)


def done(checked):
    print(json.dumps({"entities": len(rows), "checked": checked, "rows": dict(rows), "views": views}))
    sys.exit(0)


if src == "--rows":
    done(0)

if src == "--live":
    rep = json.loads(Path(sys.argv[3]).read_text())
    for path, n in rep["rows"].items():
        path = "/" + path.strip("/")
        if rows.get(path) != n:
            sys.exit(f"{path}: {rows.get(path)} rows in the .rrd, the viewer logged {n}")
    if sorted(n for _, n, _ in views) != sorted(rep["layout"]):
        sys.exit(f"views {views} differ from the reported layout {rep['layout']}")
    done(len(rep["rows"]))

counts = collections.Counter()
with open(src, "rb") as f:
    for _, channel, _ in make_reader(f).iter_messages():
        counts[channel.topic] += 1

expected = {}
for topic, n in counts.items():
    if m := re.fullmatch(r"/camera/(\w+)/image_raw(?:/compressed)?", topic):
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
                expected[f"/joints/{c}/{j}"] = n
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
# the layout: a 2D view per camera stream and tactile pad, the arm in 3D, the plots, the log
n_images = sum(1 for e in expected if e.startswith(("/camera/", "/tactile/")))
if kinds["2D"] != n_images or kinds["3D"] != 1 or kinds["TextLog"] != 1 or kinds["TimeSeries"] < 5:
    sys.exit(f"unexpected layout {views}")
done(len(expected))
