#!/usr/bin/env python3
"""Decode every message of an MCAP file with two readers we did not write, from the schemas
the file itself carries: `mcap-ros2-support` and `rosbags` (a fresh typestore holding only the
file's ros2msg definitions). Also recompute each channel's RIHS01 type hash with rosbags from
the same definitions.

usage: check_any_types.py FILE.mcap > report.json
report: {topic: {"type", "messages", "mcap_ros2_ok", "rosbags_ok", "hash_file",
                 "hash_rosbags", "errors": [...]}}
"""
import json
import sys

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.typesys import Stores, get_typestore, get_types_from_msg


def main() -> int:
    out = {}
    with open(sys.argv[1], "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        stores = {}
        for sid, schema in summary.schemas.items():
            ts = get_typestore(Stores.EMPTY)
            ts.register(get_types_from_msg(schema.data.decode(), schema.name))
            stores[sid] = ts
        for ch in summary.channels.values():
            schema = summary.schemas[ch.schema_id]
            try:
                h = stores[ch.schema_id].hash_rihs01(schema.name)
            except Exception as e:  # noqa: BLE001
                h = f"error: {e}"
            out[ch.topic] = {"type": schema.name, "messages": 0, "mcap_ros2_ok": 0,
                             "rosbags_ok": 0, "hash_file": ch.metadata.get("topic_type_hash"),
                             "stamp": ch.metadata.get("demotape.stamp"),
                             "hash_rosbags": h, "errors": []}
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
            r = out[channel.topic]
            r["messages"] += 1
            if decoded is not None:
                r["mcap_ros2_ok"] += 1
            try:
                stores[schema.id].deserialize_cdr(message.data, schema.name)
                r["rosbags_ok"] += 1
            except Exception as e:  # noqa: BLE001
                if len(r["errors"]) < 3:
                    r["errors"].append(str(e))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
