#!/usr/bin/env python3
"""Harness of the end-to-end benchmark (bench/e2e/run.sh): topics, load, measurements.

Everything talks to the broker given by --brokers (127.0.0.1 only in run.sh). Subcommands:

  topics      create topics (3 partitions by default)
  produce     produce events keyed by tail, as fast as possible or at a fixed rate, for a
              count or a duration; events are the lines of an event file (real C-MAPSS FD001
              from `fleetscore import cmapss`), repeated with a distinct tail prefix per copy.
              run.sh uses the Rust generator bench/loadgen (the same events and output) unless
              LOADGEN=python: at 30k events/s this one needs a third of a core and falls
              behind its schedule by up to 25 ms, then sends the backlog in a burst
  wait        wait until a topic holds at least N records (high watermarks; bounded)
  throughput  read a predictions topic: events/s from the first to the last prediction
              (their Kafka timestamps, set by the system's producer), and from the middle one
              to the last (a fresh JVM's JIT warm-up left out)
  latency     per prediction: its Kafka timestamp minus the source record's (matched through
              the fleet.source.partition/offset headers); p50/p90/p99/max. "produced" latency:
              under exactly-once the timestamp is the prediction's append, before its
              transaction commits, so this leaves out the wait for the commit
  visible     a live read_committed reader of the predictions topic, started before the load:
              per prediction, the wall-clock time it was received minus the source record's
              timestamp: the latency a read_committed consumer sees; p50/p90/p99/max
  visible-match  the same from the receipts of bench/loadgen's fleet-visible (the same live
              reader in Rust, run.sh's default: it takes far less of the shared CPU), once the
              run is over
  compare     predictions of two topics for the same (tail, source_event_id)
  stages      fleetscore's stage histograms over a measured window: the difference of two
              /metrics scrapes (its start and its end), per stage the share of batches (of
              events, for the event lags; of commits, for the commit) over 5, 10, 25 and 50 ms
  report      medians over runs, from the JSON lines the other subcommands printed

Each measuring subcommand prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

BASE_TAIL = b'"tail":"CMAPSS-'


def log(*a) -> None:
    print("measure:", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- topics


def cmd_topics(args) -> None:
    admin = AdminClient({"bootstrap.servers": args.brokers})
    config = {}
    if args.log_append_time:
        config["message.timestamp.type"] = "LogAppendTime"
    new = [
        NewTopic(t, num_partitions=args.partitions, replication_factor=1, config=config)
        for t in args.names
    ]
    for topic, fut in admin.create_topics(new, operation_timeout=30).items():
        try:
            fut.result(timeout=60)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    log(f"topics ready: {' '.join(args.names)} ({args.partitions} partitions)")


# ------------------------------------------------------------------------------ produce


class Events:
    """The base event file's lines, repeated with tail prefix f'{tag}{copy:03d}-'."""

    def __init__(self, path: Path, tag: str):
        self.lines = []
        self.units = []
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            if BASE_TAIL not in line:
                sys.exit(f"{path}: expected C-MAPSS telemetry with tails CMAPSS-N")
            self.lines.append(line)
            self.units.append(json.loads(line)["tail"].removeprefix("CMAPSS-").encode())
        self.tag = tag

    def __iter__(self):
        copy = 0
        while True:
            prefix = f"{self.tag}{copy:03d}-".encode()
            if len(prefix) + 3 > 16:
                sys.exit("tail prefix too long for 16-character tails")
            new_tail = b'"tail":"' + prefix
            for line, unit in zip(self.lines, self.units):
                yield prefix + unit, line.replace(BASE_TAIL, new_tail, 1)
            copy += 1


def cmd_produce(args) -> None:
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "linger.ms": args.linger_ms,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    events = iter(Events(args.events, args.tag))
    sent = 0
    failed = 0

    def on_delivery(err, _msg):
        nonlocal failed
        if err is not None:
            failed += 1

    cpu_start = time.process_time()
    start = time.monotonic()
    wall_start = time.time()
    deadline = start + args.seconds if args.seconds else None
    limit = args.count or None
    behind_max = 0.0
    while True:
        if limit is not None and sent >= limit:
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if args.rate > 0:
            due = start + sent / args.rate
            if now < due:
                time.sleep(min(due - now, 0.001))
                continue
            behind_max = max(behind_max, now - due)
        key, value = next(events)
        try:
            producer.produce(args.topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
            continue
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    elapsed = time.monotonic() - start
    left = producer.flush(60)
    out = {
        "what": "produce",
        "topic": args.topic,
        "sent": sent,
        "failed": failed + left,
        "seconds": round(elapsed, 3),
        "rate_target": args.rate,
        "rate_achieved": round(sent / elapsed, 1) if elapsed > 0 else None,
        "max_behind_schedule_ms": round(behind_max * 1000, 1),
        "start_ms": int(wall_start * 1000),
        "cpu_s": round(time.process_time() - cpu_start, 3),
    }
    print(json.dumps(out), flush=True)
    if failed or left:
        sys.exit(f"{failed + left} records were not delivered")


# --------------------------------------------------------------------------------- read


def consumer(brokers: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "bench-e2e-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def partitions_of(c: Consumer, topic: str) -> list[int]:
    md = c.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        sys.exit(f"topic {topic} not found: {t.error if t else ''}")
    return sorted(t.partitions)


def high_watermarks(c: Consumer, topic: str) -> dict[int, int]:
    return {
        p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
        for p in partitions_of(c, topic)
    }


def read_all(brokers: str, topic: str, headers: bool = False, values: bool = False):
    """Every committed record of `topic` now: (partition, offset, timestamp_ms, headers, value)
    rows. read_committed: an exactly-once writer's aborted records are not counted, and its
    transaction markers (which take offsets, but are no records) end a partition by its EOF."""
    c = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "bench-e2e-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        highs = high_watermarks(c, topic)
        todo = {p for p, h in highs.items() if h > 0}
        c.assign([TopicPartition(topic, p, 0) for p in highs])
        rows = []
        deadline = time.monotonic() + 120
        while todo:
            if time.monotonic() > deadline:
                sys.exit(f"reading {topic}: timed out with partitions {sorted(todo)} unfinished")
            for m in c.consume(num_messages=10_000, timeout=1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= highs[m.partition()]:
                            todo.discard(m.partition())
                        continue
                    raise KafkaException(m.error())
                p, o = m.partition(), m.offset()
                rows.append(
                    (
                        p,
                        o,
                        m.timestamp()[1],
                        dict(m.headers() or []) if headers else None,
                        m.value() if values else None,
                    )
                )
                if o + 1 >= highs[p]:
                    todo.discard(p)
        return rows
    finally:
        c.close()


# ------------------------------------------------------------------------------- wait


def cmd_wait(args) -> None:
    c = consumer(args.brokers)
    start = time.monotonic()
    total = 0
    try:
        while True:
            total = sum(high_watermarks(c, args.topic).values())
            if total >= args.count:
                break
            if time.monotonic() - start > args.timeout:
                log(f"{args.topic}: {total} of {args.count} records after {args.timeout} s")
                sys.exit(3)
            time.sleep(args.interval)
    finally:
        c.close()
    log(f"{args.topic}: {total} records after {time.monotonic() - start:.1f} s")
    if args.print:
        print(total)


# ------------------------------------------------------------------------------- measure


def cmd_throughput(args) -> None:
    rows = read_all(args.brokers, args.topic)
    ts = np.sort(np.array([r[2] for r in rows], dtype=np.int64))
    n = len(ts)
    span_ms = int(ts[-1] - ts[0]) if n else 0
    # The same rate over the second half of the predictions (by count): a fresh JVM spends
    # its first seconds compiling, which this leaves out; a system without a warm-up gets
    # about its whole-run rate.
    half_ms = int(ts[-1] - ts[n // 2]) if n > 1 else 0
    out = {
        "what": "throughput",
        "system": args.system,
        "run": args.run,
        "predictions": n,
        "expected": args.expect,
        "span_ms": span_ms,
        "events_per_s": round((n - 1) / (span_ms / 1000), 1) if span_ms > 0 else None,
        "events_per_s_second_half": (
            round((n - 1 - n // 2) / (half_ms / 1000), 1) if half_ms > 0 else None
        ),
    }
    print(json.dumps(out), flush=True)
    if args.expect and n != args.expect:
        log(f"warning: {n} predictions, expected {args.expect}")


def percentiles(lat: np.ndarray) -> dict:
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "p999_ms": float(np.percentile(lat, 99.9)),
        "max_ms": float(lat.max()),
        "mean_ms": round(float(lat.mean()), 3),
    }


def log_series(lat: np.ndarray, src_ts: np.ndarray, since: int) -> None:
    """Per second of source time on stderr: count, p50, p99, max (a growing backlog shows up
    here)."""
    if not lat.size:
        return
    sec = (src_ts - since) // 1000
    for s in np.unique(sec):
        m = lat[sec == s]
        log(f"  +{int(s):3d}s n={m.size:6d} p50={np.percentile(m, 50):7.1f} "
            f"p99={np.percentile(m, 99):7.1f} max={m.max():7.1f} ms")


def cmd_latency(args) -> None:
    src = read_all(args.brokers, args.source_topic)
    src_ts = {(p, o): t for p, o, t, _, _ in src}
    preds = read_all(args.brokers, args.pred_topic, headers=True)
    since = args.since_ms + int(args.warmup_s * 1000)
    lat = []
    src_of = []
    unmatched = 0
    in_window_src = sum(1 for _, _, t, _, _ in src if t >= since)
    for _, _, t, h, _ in preds:
        try:
            key = (int(h["fleet.source.partition"]), int(h["fleet.source.offset"]))
            t0 = src_ts[key]
        except (KeyError, TypeError, ValueError):
            unmatched += 1
            continue
        if t0 >= since:
            lat.append(t - t0)
            src_of.append(t0)
    lat = np.array(lat, dtype=np.float64)
    if args.series:
        log_series(lat, np.array(src_of), since)
    out = {
        "what": "latency",
        "measure": "produced",
        "system": args.system,
        "run": args.run,
        "rate": args.rate,
        "fraction": args.fraction,
        "source_records": len(src),
        "measured": int(lat.size),
        "source_in_window": in_window_src,
        "unmatched": unmatched,
    }
    if lat.size:
        out.update(percentiles(lat))
    print(json.dumps(out), flush=True)
    if lat.size < in_window_src:
        log(f"warning: {in_window_src - lat.size} source records in the window have no prediction")


def cmd_visible(args) -> None:
    """Live read_committed reader of the predictions topic (see the module doc).

    Start it before the system and the load. It writes --ready-file once it has received a
    first prediction (run.sh's probe), so the load starts with the reader fetching. run.sh
    writes --done-file when the load has ended: {"expect": predictions in all, "since_ms":
    start of the rate phase}. The reader stops on the first of: the expected count received;
    --idle-s without a new prediction after the done file appeared; --max-s since it started;
    SIGTERM. It then prints what it got, whatever stopped it.

    Cheap on purpose (it shares the machine with the system and the broker): what is queued
    taken in one call (up to 10,000), one clock read per call, only the two source headers
    looked at, no values.
    """
    stop = {"why": None}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(why="sigterm"))
    c = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": "bench-e2e-visible",  # required by the client; assign() joins no group
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
            "fetch.min.bytes": 1,
        }
    )
    cpu_start = time.process_time()
    start = time.monotonic()
    deadline = start + args.max_s
    recv_ms: list[float] = []  # per prediction: wall-clock receive time
    keys: list[tuple[int, int]] = []  # per prediction: its source (partition, offset)
    unmatched = 0
    done = None  # the done file's contents, once it appears
    last_new = start  # when the last prediction came, or the done file appeared if later
    next_done_check = 0.0
    try:
        c.assign(
            [TopicPartition(args.pred_topic, p, OFFSET_BEGINNING)
             for p in partitions_of(c, args.pred_topic)]
        )
        while stop["why"] is None:
            # consume() waits for its whole batch or its timeout, which would date a record
            # received early in the wait as late as the wait's end: take what is queued without
            # waiting, and when nothing is, wait for one record (poll returns on the first).
            batch = c.consume(num_messages=10_000, timeout=0)
            if not batch:
                m = c.poll(0.05)
                batch = [m] if m is not None else []
            now_ms = time.time() * 1000
            now = time.monotonic()
            got = 0
            for m in batch:
                if m.error():
                    raise KafkaException(m.error())
                h = dict(m.headers() or [])
                try:
                    keys.append((int(h["fleet.source.partition"]), int(h["fleet.source.offset"])))
                except (KeyError, ValueError):
                    unmatched += 1
                    continue
                recv_ms.append(now_ms)
                got += 1
            if got:
                last_new = now
                if args.ready_file and len(keys) == got:
                    Path(args.ready_file).write_text("ready\n")
            if done is None and now >= next_done_check:
                next_done_check = now + 0.2
                if os.path.exists(args.done_file):
                    done = json.loads(Path(args.done_file).read_text())
                    last_new = max(last_new, now)
            if done is not None and len(keys) + unmatched >= done["expect"]:
                stop["why"] = "count"
            elif done is not None and now - last_new > args.idle_s:
                stop["why"] = "idle"
            elif now > deadline:
                stop["why"] = "deadline"
        reader = {
            "reader": "measure.py",
            "received": len(keys) + unmatched,
            "stopped": stop["why"],
            "reader_s": round(time.monotonic() - start, 1),
            "reader_cpu_s": round(time.process_time() - cpu_start, 2),
            "unmatched": unmatched,
        }
        print_visible(args, reader, done, keys, recv_ms)
    finally:
        c.close()


def print_visible(args, reader: dict, done, keys, recv_ms) -> None:
    """The visible latency of the received predictions (`keys`: their sources, `recv_ms`: when
    each arrived), against their source records' append times, after the warm-up. `reader`:
    what the reader says of itself (received, stopped, reader_s, reader_cpu_s, unmatched)."""
    out = {
        "what": "latency",
        "measure": "visible",
        "system": args.system,
        "run": args.run,
        "rate": args.rate,
        "fraction": args.fraction,
        "expected": done["expect"] if done else None,
        **reader,
    }
    if done is None:
        log("visible: the load never ended (no done file); nothing to measure against")
        print(json.dumps(out), flush=True)
        return
    since = done["since_ms"] + int(args.warmup_s * 1000)
    src_ts = {(p, o): t for p, o, t, _, _ in read_all(args.brokers, args.source_topic)}
    t0 = np.array([src_ts.get(k, -1) for k in keys], dtype=np.float64)
    recv = np.array(recv_ms, dtype=np.float64)
    out["unmatched"] += int((t0 < 0).sum())
    window = t0 >= since
    lat = recv[window] - t0[window]
    out["source_in_window"] = sum(1 for t in src_ts.values() if t >= since)
    out["measured"] = int(lat.size)
    if lat.size:
        out.update(percentiles(lat))
    if args.series:
        log_series(lat, t0[window], since)
    print(json.dumps(out), flush=True)
    if out["stopped"] != "count":
        log(f"visible: stopped by {out['stopped']} with {out['received']} of "
            f"{out['expected']} predictions")


def cmd_visible_match(args) -> None:
    """The visible latency from fleet-visible's receipts (bench/loadgen/src/visible.rs): the
    same record as `visible` prints, once the run is over."""
    try:
        reader = json.loads(Path(args.reader_json).read_text())
    except (OSError, ValueError):
        reader = {"stopped": "killed"}  # what it received is in the receipts all the same
    done = json.loads(Path(args.done_file).read_text()) if os.path.exists(args.done_file) else None
    receipts = np.loadtxt(args.receipts, dtype=np.int64, ndmin=2).reshape(-1, 3)
    keys = list(zip(receipts[:, 0].tolist(), receipts[:, 1].tolist()))
    reader.setdefault("received", len(keys))
    reader.setdefault("unmatched", 0)
    print_visible(args, reader, done, keys, receipts[:, 2])


def cmd_compare(args) -> None:
    def load(topic):
        out = {}
        for _, _, _, _, v in read_all(args.brokers, topic, values=True):
            d = json.loads(v)
            out[(d["tail"], d["source_event_id"])] = d["prediction"]
        return out

    a, b = load(args.a), load(args.b)
    common = sorted(set(a) & set(b))
    # Both are float32 model outputs; fleetscore and the Kafka Streams peer write the shortest
    # decimal of the f32, the Quix peer the f64 it widened to, so compare them as f32.
    fa = np.array([a[k] for k in common], dtype=np.float32)
    fb = np.array([b[k] for k in common], dtype=np.float32)
    diff = np.abs(fa.astype(np.float64) - fb.astype(np.float64))
    ref = np.abs(fa.astype(np.float64))
    out = {
        "what": "compare",
        "system": args.system,
        "a": args.a,
        "b": args.b,
        "a_count": len(a),
        "b_count": len(b),
        "common": len(common),
        "max_abs_diff": float(diff.max()) if diff.size else None,
        "mean_abs_diff": float(diff.mean()) if diff.size else None,
        "within_1e-3": int((diff <= 1e-3).sum()),
        "identical_f32": int((diff == 0).sum()),
        "max_rel_diff": float((diff / np.maximum(ref, 1e-12)).max()) if diff.size else None,
    }
    worst = sorted(zip(diff, common), reverse=True)[:3]
    out["worst"] = [[k[0], k[1], a[k], b[k]] for _, k in worst]
    print(json.dumps(out), flush=True)


def cmd_cpu(args) -> None:
    """CPU use between two run.sh snapshots: 'wall_s sut_ticks broker_ticks busy_ticks total'."""
    a, b = ([float(x) for x in snap.split()] for snap in (args.before, args.after))
    wall = b[0] - a[0]
    sut, broker = (b[1] - a[1]) / args.hz, (b[2] - a[2]) / args.hz
    busy = (b[3] - a[3]) / (b[4] - a[4]) * args.ncpu  # cores busy on average, whole machine
    lg = args.loadgen_cpu_s
    out = {
        "what": "cpu",
        "system": args.system,
        "name": args.name,
        "phase": args.phase,
        "events": args.events,
        "wall_s": round(wall, 2),
        "sut_cpu_us_per_event": round(sut * 1e6 / max(args.events, 1), 1),
        "sut_cores": round(sut / wall, 2),
        "broker_cores": round(broker / wall, 2),
        "loadgen_cores": round(lg / wall, 2),
        "machine_busy_cores": round(busy, 2),
        "others_cores": round(busy - (sut + broker + lg) / wall, 2),
    }
    print(json.dumps(out), flush=True)


# -------------------------------------------------------------------------------- stages

# What `stages` reads from fleetscore's /metrics: (histogram, label selecting the series or
# None, the name it gets in the output).
STAGE_SERIES = [
    ("fleetscore_event_lag_seconds", 'stage="consumed"', "lag consumed"),
    ("fleetscore_pipeline_stage_seconds", 'stage="batching"', "batching"),
    ("fleetscore_pipeline_stage_seconds", 'stage="apply"', "apply"),
    ("fleetscore_pipeline_stage_seconds", 'stage="to_scoring"', "to_scoring"),
    ("fleetscore_pipeline_stage_seconds", 'stage="scoring"', "scoring"),
    ("fleetscore_pipeline_stage_seconds", 'stage="to_output"', "to_output"),
    ("fleetscore_pipeline_stage_seconds", 'stage="txn_gate"', "txn_gate"),
    ("fleetscore_pipeline_stage_seconds", 'stage="produce"', "produce"),
    ("fleetscore_event_lag_seconds", 'stage="produced"', "lag produced"),
    ("fleetscore_commit_seconds", None, "commit"),
    ("fleetscore_commit_step_seconds", 'step="outputs"', "commit outputs"),
    ("fleetscore_commit_step_seconds", 'step="changelog"', "commit changelog"),
    ("fleetscore_commit_step_seconds", 'step="offsets"', "commit offsets"),
    ("fleetscore_commit_step_seconds", 'step="commit"', "commit commit"),
]


def scrape_histograms(path: Path) -> dict:
    """{(name, label or None): {"buckets": {le: count}, "sum": s, "count": n}} of a scrape."""
    out: dict = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        if not line.startswith("fleetscore_") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        labels = labels.rstrip("}")
        for suffix in ("_bucket", "_sum", "_count"):
            if not name.endswith(suffix):
                continue
            base = name[: -len(suffix)]
            parts = [p for p in labels.split(",") if p and not p.startswith("le=")]
            key = (base, parts[0] if parts else None)
            h = out.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            if suffix == "_bucket":
                le = [p for p in labels.split(",") if p.startswith("le=")][0][4:-1]
                h["buckets"][float(le)] = float(value)
            else:
                h[suffix[1:]] = float(value)
    return out


def cmd_stages(args) -> None:
    start, end = scrape_histograms(Path(args.start)), scrape_histograms(Path(args.end))
    out = {"what": "stages", "system": "fleetscore", "run": args.run, "name": args.name,
           "measured": bool(start)}
    for name, label, short in STAGE_SERIES:
        b = end.get((name, label))
        if b is None:
            continue
        a = start.get((name, label), {"buckets": {}, "sum": 0.0, "count": 0.0})
        n = b["count"] - a["count"]
        if n <= 0:
            continue
        d = {"n": int(n), "mean_ms": round((b["sum"] - a["sum"]) / n * 1e3, 2)}
        for le in (0.005, 0.01, 0.025, 0.05):
            below = b["buckets"].get(le, 0) - a["buckets"].get(le, 0)
            d[f"over_{int(le * 1e3)}ms_pct"] = round((n - below) / n * 100, 2)
        out[short] = d
    print(json.dumps(out), flush=True)


# -------------------------------------------------------------------------------- report


def cmd_report(args) -> None:
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line]
    med = statistics.median
    cpu_keys = ["sut_cpu_us_per_event", "sut_cores", "broker_cores", "loadgen_cores",
                "machine_busy_cores", "others_cores"]
    summary = {}
    for s in ["fleetscore", "peer", "peer-quix-defaults", "kstreams", "kstreams-defaults"]:
        tp = [r["events_per_s"] for r in rows if r["what"] == "throughput" and r["system"] == s]
        la = [r for r in rows if r["what"] == "latency" and r["system"] == s and r.get("measured")]
        cpu = [r for r in rows if r["what"] == "cpu" and r["system"] == s]
        if not tp and not la:
            continue
        d = {}
        if tp:
            d.update(throughput_runs=tp, events_per_s=med(tp))
            half = [r["events_per_s_second_half"] for r in rows if r["what"] == "throughput"
                    and r["system"] == s and r.get("events_per_s_second_half")]
            if half:
                d.update(events_per_s_second_half=med(half))
        # Keyed "<fraction>" for the produced latency (as before the visible one existed) and
        # "<fraction> visible" for what a live read_committed reader saw.
        d["latency"] = {}
        for f in sorted({r.get("fraction", 0.5) for r in la}, reverse=True):
            for measure in ["produced", "visible"]:
                runs = [r for r in la if r.get("fraction", 0.5) == f
                        and r.get("measure", "produced") == measure]
                if not runs:
                    continue
                e = {"rate": runs[0]["rate"], "measure": measure, "runs": len(runs),
                     "measured_per_run": [r["measured"] for r in runs]}
                # p99.9 is absent from runs recorded before it was measured.
                for k in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]:
                    if any(k not in r for r in runs):
                        continue
                    e[k] = med(r[k] for r in runs)
                    e[k + "_runs"] = [r[k] for r in runs]
                if measure == "visible":
                    e["stopped_per_run"] = [r.get("stopped") for r in runs]
                key = str(f) if measure == "produced" else f"{f} visible"
                d["latency"][key] = e
        d["cpu"] = {}
        for phase in sorted({r["phase"] for r in cpu}, key=lambda x: (x != "tput", x)):
            rs = [r for r in cpu if r["phase"] == phase]
            d["cpu"][phase] = {k: med(r[k] for r in rs) for k in cpu_keys}
        summary[s] = d
    fs, py = summary.get("fleetscore", {}), summary.get("peer", {})
    if fs.get("events_per_s") and py.get("events_per_s"):
        summary["ratio"] = round(fs["events_per_s"] / py["events_per_s"], 2)
        c_fs, c_py = fs["cpu"].get("tput"), py["cpu"].get("tput")
        if c_fs and c_py:
            summary["cpu_per_event_ratio"] = round(
                c_py["sut_cpu_us_per_event"] / c_fs["sut_cpu_us_per_event"], 2
            )
    if summary.get("peer-quix-defaults", {}).get("events_per_s") and fs.get("events_per_s"):
        summary["ratio_vs_quix_defaults"] = round(
            fs["events_per_s"] / summary["peer-quix-defaults"]["events_per_s"], 2
        )
    ks = summary.get("kstreams", {})
    if fs.get("events_per_s") and ks.get("events_per_s"):
        summary["ratio_vs_kstreams"] = round(fs["events_per_s"] / ks["events_per_s"], 2)
        c_fs, c_ks = fs["cpu"].get("tput"), ks["cpu"].get("tput")
        if c_fs and c_ks:
            summary["cpu_per_event_ratio_kstreams"] = round(
                c_ks["sut_cpu_us_per_event"] / c_fs["sut_cpu_us_per_event"], 2
            )
    if summary.get("kstreams-defaults", {}).get("events_per_s") and fs.get("events_per_s"):
        summary["ratio_vs_kstreams_defaults"] = round(
            fs["events_per_s"] / summary["kstreams-defaults"]["events_per_s"], 2
        )
    # One comparison per peer ("system"; results from before the Kafka Streams peer have none:
    # theirs is the Quix peer's). "compare" stays the Quix peer's, as it was.
    compares = {r.get("system", "peer"): r for r in rows if r["what"] == "compare"}
    summary["compare"] = compares.get("peer")
    if "kstreams" in compares:
        summary["compare_kstreams"] = compares["kstreams"]
    if not args.markdown:
        print(json.dumps(summary, indent=2))
        return

    names = {
        "fleetscore": "fleetscore",
        "peer": "Quix Streams peer",
        "peer-quix-defaults": "Quix Streams peer, Quix defaults",
        "kstreams": "Kafka Streams peer",
        "kstreams-defaults": "Kafka Streams peer, Kafka Streams defaults",
    }
    print("| system | sustained events/s (median) | runs | latency at | measure | p50 | p90 | "
          "p99 | p99.9 | max |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, d in summary.items():
        if key not in names:
            continue
        tput = f"{d['events_per_s']:,.0f}" if "events_per_s" in d else "n/a"
        runs = ", ".join(f"{x:,.0f}" for x in d.get("throughput_runs", []))
        lat = list(d["latency"].items()) or [(None, None)]
        for i, (f, e) in enumerate(lat):
            head = f"| {names[key]} | {tput} | {runs} |" if i == 0 else "| | | |"
            if e is None:
                print(head + " n/a | | | | | | |")
                continue
            p999 = f"{e['p999_ms']:.0f} ms" if "p999_ms" in e else "n/a"
            print(
                f"{head} {e['rate']:,.0f}/s ({float(f.split()[0]):g} × max) | {e['measure']} | "
                f"{e['p50_ms']:.0f} ms | {e['p90_ms']:.0f} ms | {e['p99_ms']:.0f} ms | "
                f"{p999} | {e['max_ms']:.0f} ms |"
            )
    halves = [f"{names[k]} {d['events_per_s_second_half']:,.0f}" for k, d in summary.items()
              if k in names and d.get("events_per_s_second_half")]
    if halves:
        print("\nsustained events/s over the second half of each throughput run's predictions "
              "(medians; leaves out a fresh JVM's JIT warm-up): " + ", ".join(halves))
    print("\nmeasure: produced = the prediction's append time at the broker minus its event's "
          "(under exactly-once, before its transaction commits); visible = the wall-clock time a "
          "live read_committed reader received it minus its event's append time.")
    if "ratio" in summary:
        print(f"\nthroughput ratio fleetscore/peer: {summary['ratio']}x", end="")
        if "ratio_vs_quix_defaults" in summary:
            print(f" (vs the peer on Quix defaults: {summary['ratio_vs_quix_defaults']}x)", end="")
        print()
    if "cpu_per_event_ratio" in summary:
        print(f"CPU time per event, peer/fleetscore (backlog runs): {summary['cpu_per_event_ratio']}x")
    if "ratio_vs_kstreams" in summary:
        sep = "" if "ratio" in summary else "\n"
        print(f"{sep}throughput ratio fleetscore/Kafka Streams peer: {summary['ratio_vs_kstreams']}x",
              end="")
        if "ratio_vs_kstreams_defaults" in summary:
            print(f" (vs the Kafka Streams peer on Kafka Streams defaults: "
                  f"{summary['ratio_vs_kstreams_defaults']}x)", end="")
        print()
    if "cpu_per_event_ratio_kstreams" in summary:
        print("CPU time per event, Kafka Streams peer/fleetscore (backlog runs): "
              f"{summary['cpu_per_event_ratio_kstreams']}x")
    print("\nCPU (medians; cores = CPU-seconds per second of the measured window; 'other' = "
          "the rest of the machine: other processes and the kernel):\n")
    print("| system | phase | CPU µs/event (system) | system cores | broker cores | "
          "load generator cores | machine busy cores | other |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, d in summary.items():
        if key not in names:
            continue
        for phase, c in d["cpu"].items():
            label = "backlog" if phase == "tput" else f"fixed rate ({int(phase[3:] or 50) / 100:g} × max)"
            print(
                f"| {names[key]} | {label} | {c['sut_cpu_us_per_event']:.1f} | "
                f"{c['sut_cores']:.2f} | {c['broker_cores']:.2f} | {c['loadgen_cores']:.2f} | "
                f"{c['machine_busy_cores']:.2f} | {c['others_cores']:.2f} |"
            )
    for key, who in [("compare", "Quix Streams peer"), ("compare_kstreams", "Kafka Streams peer")]:
        cmp = summary.get(key)
        if cmp:
            print(
                f"\n{who} vs fleetscore predictions for the same events: {cmp['common']:,} "
                f"compared, {cmp['identical_f32']:,} identical as float32, max |diff| "
                f"{cmp['max_abs_diff']}"
            )
    stages = [r for r in rows if r["what"] == "stages" and r.get("measured")]
    if stages:
        print("\nfleetscore's latency runs, measured window only: where the time went (per "
              "micro-batch; per event for the lags; per commit for the commit). Each cell: mean, "
              "then the share over 10 ms / over 25 ms:\n")
        shorts = [short for _, _, short in STAGE_SERIES if any(short in r for r in stages)]
        print("| run | " + " | ".join(shorts) + " |")
        print("| --- |" + " --- |" * len(shorts))
        for r in stages:
            cells = []
            for short in shorts:
                d = r.get(short)
                cells.append("" if d is None else f"{d['mean_ms']:.1f} ms, "
                             f"{d['over_10ms_pct']:g} % / {d['over_25ms_pct']:g} %")
            print(f"| {r['name'] or r['run']} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("topics")
    s.add_argument("--brokers", required=True)
    s.add_argument("--partitions", type=int, default=3)
    s.add_argument("--log-append-time", action="store_true")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_topics)

    s = sub.add_parser("produce")
    s.add_argument("--brokers", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--events", type=Path, required=True, help="C-MAPSS event file (JSONL)")
    s.add_argument("--tag", required=True, help="tail prefix stem; copy k gets TAGkkk-")
    s.add_argument("--count", type=int, default=0)
    s.add_argument("--seconds", type=float, default=0)
    s.add_argument("--rate", type=float, default=0, help="events/s; 0 = as fast as possible")
    s.add_argument("--linger-ms", default="1")
    s.set_defaults(func=cmd_produce)

    s = sub.add_parser("wait")
    s.add_argument("--brokers", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--interval", type=float, default=0.25)
    s.add_argument("--print", action="store_true", help="print the count reached on stdout")
    s.set_defaults(func=cmd_wait)

    s = sub.add_parser("throughput")
    s.add_argument("--brokers", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--system", required=True)
    s.add_argument("--run", type=int, default=0)
    s.add_argument("--expect", type=int, default=0)
    s.set_defaults(func=cmd_throughput)

    def latency_arguments(s) -> None:
        """What the latency subcommands take: the run, and where its source records are."""
        s.add_argument("--brokers", required=True)
        s.add_argument("--source-topic", required=True)
        s.add_argument("--system", required=True)
        s.add_argument("--run", type=int, default=0)
        s.add_argument("--rate", type=float, default=0)
        s.add_argument("--fraction", type=float, default=0.5, help="rate / sustained maximum")
        s.add_argument("--warmup-s", type=float, default=3)
        s.add_argument("--series", action="store_true", help="per-second latency on stderr")

    s = sub.add_parser("latency")
    latency_arguments(s)
    s.add_argument("--pred-topic", required=True)
    s.add_argument("--since-ms", type=int, required=True, help="start of the rate phase")
    s.set_defaults(func=cmd_latency)

    s = sub.add_parser("visible")
    latency_arguments(s)
    s.add_argument("--pred-topic", required=True)
    s.add_argument("--ready-file", help="written once a first prediction was received")
    s.add_argument("--done-file", required=True,
                   help='written by the caller when the load ended: {"expect", "since_ms"}')
    s.add_argument("--idle-s", type=float, default=10,
                   help="stop this long without a prediction after the load ended")
    s.add_argument("--max-s", type=float, default=300, help="hard deadline from the start")
    s.set_defaults(func=cmd_visible)

    s = sub.add_parser("visible-match")
    latency_arguments(s)
    s.add_argument("--done-file", required=True, help="as for visible")
    s.add_argument("--receipts", required=True, help="fleet-visible's receipts")
    s.add_argument("--reader-json", required=True, help="fleet-visible's stdout")
    s.set_defaults(func=cmd_visible_match)

    s = sub.add_parser("compare")
    s.add_argument("--brokers", required=True)
    s.add_argument("--a", required=True)
    s.add_argument("--b", required=True)
    s.add_argument("--system", default="peer", help="the system that wrote --b")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("cpu")
    for a in ["--system", "--name", "--phase", "--before", "--after"]:
        s.add_argument(a, required=True)
    s.add_argument("--events", type=int, required=True)
    s.add_argument("--loadgen-cpu-s", type=float, default=0)
    s.add_argument("--hz", type=int, default=100)
    s.add_argument("--ncpu", type=int, default=2)
    s.set_defaults(func=cmd_cpu)

    s = sub.add_parser("stages")
    s.add_argument("--start", required=True, help="/metrics scraped when the window began")
    s.add_argument("--end", required=True, help="/metrics scraped when it ended")
    s.add_argument("--run", type=int, default=0)
    s.add_argument("--name", default="")
    s.set_defaults(func=cmd_stages)

    s = sub.add_parser("report")
    s.add_argument("results", help="JSON lines file")
    s.add_argument("--markdown", action="store_true")
    s.set_defaults(func=cmd_report)

    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
