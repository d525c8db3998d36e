#!/usr/bin/env python3
"""Counts the load test's records in Kafka, deduplicated, on request.

    kafka_count.py BROKER TOPIC:FIELD [TOPIC:FIELD ...]

Reads commands on stdin, one per line, and answers each with one line:

    wait TOPIC N TIMEOUT_S  read TOPIC until it holds N distinct ids (or
                            TIMEOUT_S passed), then on to its end
    count TOPIC             read TOPIC to its end

and answers `DISTINCT RECORDS SECONDS`: distinct ids and records read so
far (cumulative since the start), and how long the command took. FIELD
names the JSON string field that identifies a record: `event_id` for
trackedge's events, `rid` for the peer's lines (nginx's $request_id).

"Its end" is where a read finds no new id for IDLE seconds (0.5): tansu
0.6 reports a partition's end offset as its last batch's base offset + 1,
so the high watermark cannot be trusted. Between commands every partition
is paused, so the consumer fetches nothing while a target is under load.
Needs confluent-kafka (its wheel carries a librdkafka that talks to tansu).
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

IDLE = 0.5


class Topic:
    def __init__(self, name: str, field: str):
        self.name = name
        self.marker = b'"' + field.encode() + b'":"'
        self.ids = set()
        self.records = 0
        self.partitions = []

    def take(self, value: bytes) -> None:
        self.records += 1
        i = value.find(self.marker)
        if i < 0:
            self.ids.add(b"?no-id:" + value[:64])
            return
        i += len(self.marker)
        j = value.find(b'"', i)
        self.ids.add(value[i:j])


def main() -> None:
    broker = sys.argv[1]
    topics = {}
    for arg in sys.argv[2:]:
        name, field = arg.rsplit(":", 1)
        topics[name] = Topic(name, field)
    c = Consumer({
        "bootstrap.servers": broker,
        "group.id": "trackedge-loadtest-count",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "log_level": 3,
    })
    md = c.list_topics(timeout=30)
    assignment = []
    for t in topics.values():
        if t.name not in md.topics or md.topics[t.name].error is not None:
            sys.exit(f"kafka_count: topic {t.name} not found")
        t.partitions = [TopicPartition(t.name, p, OFFSET_BEGINNING) for p in sorted(md.topics[t.name].partitions)]
        assignment += t.partitions
    c.assign(assignment)
    c.pause(assignment)
    print("ready", flush=True)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        start = time.monotonic()
        t = topics[words[1]]
        target = int(words[2]) if words[0] == "wait" else 0
        deadline = start + (float(words[3]) if words[0] == "wait" else 3600)
        c.resume(t.partitions)
        last_new = time.monotonic()
        seen = len(t.ids)
        while True:
            msgs = c.consume(num_messages=10000, timeout=0.1)
            now = time.monotonic()
            for m in msgs:
                # A record of another topic fetched before its pause counts there.
                if m.error() is None and m.topic() in topics:
                    topics[m.topic()].take(m.value() or b"")
            if len(t.ids) > seen:  # new ids, not merely records read again
                seen, last_new = len(t.ids), now
            if len(t.ids) >= target and now - last_new >= IDLE:
                break
            if now >= deadline:
                break
        c.pause(t.partitions)
        print(len(t.ids), t.records, "%.2f" % (time.monotonic() - start), flush=True)
    c.close()


if __name__ == "__main__":
    main()
