#!/usr/bin/env python3
"""The fleetscore engine-health job, written the way a Python team would with Quix Streams.

Telemetry events (JSON, `fleet.telemetry.v1`, keyed by tail) come in; per tail (per engine)
the last 20 cycles of the 14 tracked sensors, an EWMA and an early-life baseline are kept in
Quix Streams state; the `engine-health` features (same definitions and order as
`fleetscore feature-sets`) are scored with onnxruntime on the `engine-rul` model; a prediction
record keyed by tail goes to the predictions topic, with the source topic/partition/offset in
the same headers fleetscore writes (`fleet.source.topic|partition|offset`) and the Kafka
timestamp set when the prediction is made (as fleetscore's producer does), so the harness
measures both systems the same way.

    python peer.py --brokers 127.0.0.1:PORT --input-topic T --output-topic P \
        --group G --model-dir models/engine-rul/1 --feature-sets feature-sets.json

`--feature-sets` is the JSON printed by `fleetscore feature-sets`; the model's manifest must
list the same ordered features. Ends on SIGINT/SIGTERM (Quix Streams' own handling).

What it does like fleetscore: a cycle at or before the engine's last applied cycle changes
nothing and is not scored. What it does not: fleetscore's full validation of every field and
its dead-letter topic (here an event that is not telemetry is dropped), and delay-risk.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from quixstreams import Application, State, message_context
from quixstreams.state.memory import MemoryStore

WINDOW = 20
EWMA_ALPHA = 0.1
BASELINE_CYCLES = 10
TRACKED_SENSORS = [
    "T24", "T30", "T50", "P30", "Nf", "Nc", "Ps30",
    "phi", "NRf", "NRc", "BPR", "htBleed", "W31", "W32",
]  # fmt: skip
STATS = ["mean", "std", "min", "max", "slope", "ewma", "drift"]
TELEMETRY = "fleet.telemetry.v1"
# The engine-health feature names in the order engine_health() builds its vector;
# load_model() checks them against `fleetscore feature-sets` and the model's manifest.
FEATURE_NAMES = [f"{s}_{stat}" for s in TRACKED_SENSORS for stat in STATS] + ["cycle", "window_len"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--input-topic", required=True, help="telemetry topic")
    p.add_argument("--output-topic", required=True, help="predictions topic")
    p.add_argument("--group", required=True, help="consumer group")
    p.add_argument("--model-dir", required=True, type=Path, help="models/engine-rul/<version>")
    p.add_argument("--feature-sets", required=True, type=Path, help="fleetscore feature-sets JSON")
    p.add_argument("--state-dir", type=Path, default=None)
    p.add_argument(
        "--store",
        choices=["rocksdb", "memory"],
        default="rocksdb",
        help="Quix state store (default: rocksdb, Quix's default)",
    )
    p.add_argument(
        "--no-changelog",
        action="store_true",
        help="no changelog topics for the state (Quix's default is to have them)",
    )
    p.add_argument(
        "--ort-threads",
        type=int,
        default=1,
        help="onnxruntime intra-op threads (default 1, as fleetscore; 0 = onnxruntime's default, "
        "one per core, which is slower for one-row calls here)",
    )
    p.add_argument("--loglevel", default="WARNING")
    return p.parse_args(argv)


def load_model(model_dir: Path, feature_sets: Path, ort_threads: int):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    sets = {s["name"]: s for s in json.loads(feature_sets.read_text())}
    health = sets["engine-health"]
    names = [f["name"] for f in health["features"]]
    want = manifest["feature_set"]
    if (want["name"], want["version"]) != ("engine-health", health["version"]):
        sys.exit(f"model is for {want}, the service computes engine-health {health['version']}")
    if names != FEATURE_NAMES:
        sys.exit("fleetscore's engine-health features differ from what this peer computes")
    if manifest["input"]["features"] != names:
        sys.exit("model's feature list differs from fleetscore's engine-health features")
    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads
    session = ort.InferenceSession(str(model_dir / manifest["model_file"]), options)
    return manifest, health, session


def new_engine_state(first: list[float]) -> dict:
    return {
        "last_cycle": 0,
        "cycles": [],  # the last WINDOW cycle numbers
        "window": [],  # the last WINDOW readings, one list of 14 sensors each
        "ewma": list(first),
        "baseline_sum": [0.0] * len(first),
        "baseline_n": 0,
    }


def engine_health(eng: dict) -> np.ndarray:
    """The engine-health feature vector (float32, FEATURE_NAMES order) of one engine's state."""
    x = np.asarray(eng["cycles"], dtype=np.float64)
    w = np.asarray(eng["window"], dtype=np.float64)  # (n, 14)
    mean = w.mean(axis=0)
    std = w.std(axis=0)
    xc = x - x.mean()
    sxx = xc @ xc
    slope = (xc @ (w - mean)) / sxx if sxx > 0 else np.zeros(w.shape[1])
    ewma = np.asarray(eng["ewma"])
    drift = ewma - np.asarray(eng["baseline_sum"]) / eng["baseline_n"]
    per_sensor = np.column_stack([mean, std, w.min(axis=0), w.max(axis=0), slope, ewma, drift])
    tail = [eng["last_cycle"], len(eng["cycles"])]
    return np.concatenate([per_sensor.ravel(), tail]).astype(np.float32)


def update_state(event: dict, state: State):
    """Folds one telemetry event into its engine's state; its features, or None if late."""
    key = f"engine-{event['engine']}"
    reading = [float(event["sensors"][s]) for s in TRACKED_SENSORS]
    eng = state.get(key) or new_engine_state(reading)
    cycle = event["cycle"]
    if cycle <= eng["last_cycle"]:
        return None  # late or duplicate: changes nothing, scores nothing
    first = eng["last_cycle"] == 0
    eng["last_cycle"] = cycle
    eng["cycles"] = (eng["cycles"] + [cycle])[-WINDOW:]
    eng["window"] = (eng["window"] + [reading])[-WINDOW:]
    if not first:
        eng["ewma"] = [e + EWMA_ALPHA * (v - e) for e, v in zip(eng["ewma"], reading)]
    if eng["baseline_n"] < BASELINE_CYCLES:
        eng["baseline_sum"] = [b + v for b, v in zip(eng["baseline_sum"], reading)]
        eng["baseline_n"] += 1
    state.set(key, eng)
    return {"event": event, "features": engine_health(eng)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    manifest, health, session = load_model(args.model_dir, args.feature_sets, args.ort_threads)
    input_name = manifest["input"]["name"]
    output_name = "variable"

    def score(row: dict) -> dict:
        event = row["event"]
        value = session.run([output_name], {input_name: row["features"][np.newaxis, :]})[0]
        return {
            "schema": "fleet.prediction.v1",
            "tail": event["tail"],
            "source_event_id": event["event_id"],
            "event_time": event["event_time"],
            "model": manifest["name"],
            "model_version": manifest["version"],
            "model_sha256": manifest["sha256"],
            "feature_set": "engine-health",
            "feature_set_version": health["version"],
            "prediction": float(value[0][0]),
            "scored_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        }

    def provenance(value, key, timestamp, headers):
        ctx = message_context()
        return [
            ("fleet.model.name", manifest["name"]),
            ("fleet.model.version", manifest["version"]),
            ("fleet.source.topic", ctx.topic),
            ("fleet.source.partition", str(ctx.partition)),
            ("fleet.source.offset", str(ctx.offset)),
        ]

    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="quix-peer-"))
    app = Application(
        broker_address=args.brokers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=not args.no_changelog,
        loglevel=args.loglevel,
    )
    telemetry = app.topic(args.input_topic, key_deserializer="str", value_deserializer="json")
    predictions = app.topic(args.output_topic, key_serializer="str", value_serializer="json")

    sdf = app.dataframe(telemetry)
    if args.store == "memory":
        sdf.register_store(store_type=MemoryStore)
    sdf = sdf.filter(lambda event: event.get("schema") == TELEMETRY)
    sdf = sdf.apply(update_state, stateful=True)
    sdf = sdf.filter(lambda row: row is not None)
    sdf = sdf.apply(score)
    sdf = sdf.set_headers(provenance)
    # The prediction's Kafka timestamp is when it was made (Quix would otherwise keep the
    # source record's timestamp), like fleetscore's producer.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: time.time_ns() // 1_000_000)
    sdf.to_topic(predictions)

    logging.getLogger(__name__).info("peer starting: %s", vars(args))
    app.run()


if __name__ == "__main__":
    main()
