#!/usr/bin/env python3
"""Produce+consume roundtrip against the local broker (started with infra/kafka.sh start).

    python infra/kafka/smoke_test.py [--bootstrap 127.0.0.1:9092] [--topic events] [--partitions 3]

Checks the topic's partition count, produces one message per partition with an idempotent
producer and reads them all back with a fresh consumer group. Exit 0 on success.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--topic", default="events")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    md = AdminClient({"bootstrap.servers": args.bootstrap}).list_topics(args.topic, timeout=10)
    tm = md.topics.get(args.topic)
    if tm is None or tm.error is not None:
        print(f"topic {args.topic} missing: {tm.error if tm else None}", file=sys.stderr)
        return 1
    if len(tm.partitions) != args.partitions:
        print(f"topic {args.topic} has {len(tm.partitions)} partitions, expected {args.partitions}", file=sys.stderr)
        return 1

    run_id = uuid.uuid4().hex
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered, errors = [], []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.partition(), msg.offset()))

    for p in range(args.partitions):
        producer.produce(args.topic, key=f"{run_id}-{p}", value=f"hello {p}".encode(), partition=p,
                         on_delivery=on_delivery)
    if producer.flush(args.timeout) != 0 or errors or len(delivered) != args.partitions:
        print(f"produce failed: delivered={delivered} errors={errors}", file=sys.stderr)
        return 1

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"smoke-{run_id}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    # Start each partition at the offset we produced to, so older data does not matter.
    consumer.assign([TopicPartition(args.topic, p, off) for p, off in delivered])
    want = {f"{run_id}-{p}" for p in range(args.partitions)}
    got = set()
    deadline = time.monotonic() + args.timeout
    while got != want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"consume error: {msg.error()}", file=sys.stderr)
            continue
        key = msg.key().decode()
        if key in want:
            got.add(key)
    # Also exercise the group coordinator (__consumer_offsets).
    consumer.commit(asynchronous=False)
    consumer.close()
    if got != want:
        print(f"consumed {len(got)}/{len(want)} messages", file=sys.stderr)
        return 1
    print(f"roundtrip ok: {args.topic} has {args.partitions} partitions, produced+consumed {len(got)} messages "
          f"(idempotent producer), offsets {sorted(delivered)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
