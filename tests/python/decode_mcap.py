#!/usr/bin/env python3
"""Decode every message of an MCAP episode with the official Python `mcap` + `mcap-ros2-support`
readers (code we did not write) and print a JSON digest per message, so the Rust end-to-end
test can compare field values with what the simulator produced.

usage: decode_mcap.py FILE.mcap > digest.json
"""
import json
import struct
import sys
import zlib

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def f64s(values) -> bytes:
    return struct.pack("<%dd" % len(values), *values)


def main() -> int:
    path = sys.argv[1]
    out = {"profile": None, "channels": {}, "errors": []}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        out["profile"] = header.profile
        summary = reader.get_summary()
        out["schemas"] = {s.name: s.encoding for s in summary.schemas.values()}
        for schema, channel, message, msg in reader.iter_decoded_messages(log_time_order=False):
            ch = out["channels"].setdefault(
                channel.topic,
                {"type": schema.name, "encoding": channel.message_encoding, "messages": []},
            )
            d = {"seq": message.sequence, "log": message.log_time, "pub": message.publish_time}
            if hasattr(msg, "header"):
                d["stamp"] = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                d["frame"] = msg.header.frame_id
            t = schema.name
            if t == "sensor_msgs/msg/Image":
                data = bytes(msg.data)
                d.update(w=msg.width, h=msg.height, enc=msg.encoding, step=msg.step, n=len(data), crc=crc(data))
            elif t == "sensor_msgs/msg/JointState":
                d.update(
                    names=len(msg.name),
                    first_name=msg.name[0] if msg.name else "",
                    p0=msg.position[0],
                    crc=crc(f64s(msg.position) + f64s(msg.velocity) + f64s(msg.effort)),
                )
            elif t == "geometry_msgs/msg/WrenchStamped":
                w = msg.wrench
                v = [w.force.x, w.force.y, w.force.z, w.torque.x, w.torque.y, w.torque.z]
                d.update(fz=w.force.z, crc=crc(f64s(v)))
            elif t == "demotape_msgs/msg/TactileArray":
                p = list(msg.pressure)
                d.update(rows=msg.rows, cols=msg.cols, pad=msg.pad,
                         crc=crc(struct.pack("<%df" % len(p), *p)))
            elif t == "demotape_msgs/msg/ClockObservations":
                d.update(device=msg.device, n=len(msg.device_stamp_us),
                         ok=len(msg.host_receive_ns) == len(msg.device_stamp_us) == len(msg.event_stamp_us) == len(msg.sequence) == len(msg.mapped_ns))
            elif t == "demotape_msgs/msg/Annotation":
                d.update(kind=msg.kind, label=msg.label, layer=msg.layer,
                         start=msg.start.sec * 1_000_000_000 + msg.start.nanosec,
                         end=msg.end.sec * 1_000_000_000 + msg.end.nanosec,
                         confidence=msg.confidence)
            elif t == "demotape_msgs/msg/EpisodeEvent":
                d.update(kind=msg.kind, topic=msg.topic, count=msg.count)
            else:
                out["errors"].append("unexpected type " + t)
            ch["messages"].append(d)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
