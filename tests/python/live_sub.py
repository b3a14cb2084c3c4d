"""A third-party subscriber to demotape-recorder's live copy: `eclipse-zenoh` receives; the
ros2msg schemas come from the recorder's `<prefix>/<robot>/schemas` queryable and
`mcap-ros2-support` decodes every message with them; `rosbags` decodes the standard ROS 2
types independently with its own definitions, and both must agree. This proves the live copy
is plain ROS 2 CDR that any client can read.

usage: live_sub.py ENDPOINT ROBOT SECONDS
Prints {"topics": {topic: {"n": count, "schema": ..., "sizes": [[w, h, encoding]...]}},
"stamp_mismatch": n, "errors": [...], "statuses": [the recorder's status messages]} as JSON.
"""

import json
import sys
import threading
import time

import zenoh
from mcap_ros2._dynamic import generate_dynamic
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_JAZZY)
endpoint, robot, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
conf.insert_json5("scouting/multicast/enabled", "false")
lock = threading.Lock()
topics, errors = {}, []
mismatch = 0
statuses = []


decoders = {}


def on_sample(s):
    global mismatch
    try:
        att = json.loads(s.attachment.to_bytes())
        schema = att["schema"]
        data = bytes(s.payload.to_bytes())
        msg = decoders[schema](data)
        if schema in TS.types:  # a standard type: rosbags must read the same message
            ref = TS.deserialize_cdr(data, schema)
            if ref.header.stamp.nanosec != msg.header.stamp.nanosec or (
                    schema == "sensor_msgs/msg/Image" and bytes(ref.data) != bytes(msg.data)):
                errors.append(f"{att['topic']}: rosbags and mcap-ros2 disagree")
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with lock:
            t = topics.setdefault(att["topic"], {"n": 0, "schema": schema, "sizes": []})
            t["n"] += 1
            if schema == "sensor_msgs/msg/Image":
                t["sizes"].append([msg.width, msg.height, msg.encoding])
                if len(msg.data) != msg.step * msg.height:
                    errors.append(f"{att['topic']}: {len(msg.data)} bytes for step*height")
            if stamp != att["receive_ns"]:
                mismatch += 1
            if str(s.key_expr) != f"demotape/{robot}/live/{att['topic'].strip('/')}":
                errors.append(f"key {s.key_expr} for topic {att['topic']}")
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised in zenoh's thread
        with lock:
            errors.append(f"{s.key_expr}: {e!r}")


with zenoh.open(conf) as session:
    deadline = time.time() + 10
    while not decoders and time.time() < deadline:
        for r in session.get(f"demotape/{robot}/schemas", timeout=2.0):
            if r.ok is not None:
                for name, text in json.loads(r.ok.payload.to_string()).items():
                    decoders[name] = generate_dynamic(name, text)[name]
        if not decoders:
            time.sleep(0.2)
    if "demotape_msgs/msg/TactileArray" not in decoders:
        sys.exit(f"the recorder served no usable schemas: {sorted(decoders)}")
    sub = session.declare_subscriber(f"demotape/{robot}/live/**", on_sample)
    status = session.declare_subscriber(
        f"demotape/{robot}/status", lambda s: statuses.append(json.loads(s.payload.to_string())))
    time.sleep(secs)
    sub.undeclare()
    status.undeclare()
with lock:
    for t in topics.values():
        t["sizes"] = sorted({tuple(x) for x in t["sizes"]})
    print(json.dumps({"topics": topics, "stamp_mismatch": mismatch, "errors": errors[:20],
                      "statuses": statuses}))
