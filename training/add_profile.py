#!/usr/bin/env python3
"""Publish a new version of a published model with a drift profile: the same ``model.onnx``
bytes and golden rows as ``--from``, plus ``profile.json`` of its reference rows, computed by
the release binary (``fleetscore import`` + ``fleetscore features``) exactly as ``train.py``
computes them.

    eval "$(scripts/python-env.sh --print)"
    "$FLEETSCORE_PYTHON" training/add_profile.py all --from 1 --version 2      # ~1 min
    "$FLEETSCORE_PYTHON" training/add_profile.py delay-risk --from 1 --version 2 [--out models]

Why not retrain: training is deterministic, so ``train.py all --version 2`` would publish the
same ONNX bytes with a profile too, but takes ~14 min of CPU; this takes one feature pass per
data set. Reference rows (the same choice as ``train.py``): ``delay-risk``, the
January-September departures it was trained on (cancelled flights excluded); the
``engine-health`` models, every C-MAPSS FD001 row (``engine-anomaly`` too, although it was
fitted on the healthy cycles only: wear is not drift).

The new manifest keeps every field of the old one (metrics, description with a note appended,
stage, backend); ``created_at`` is now. The golden outputs are recomputed with onnxruntime and
must equal the old ones. A published target version is refused (no ``--overwrite``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_training import delay_risk  # noqa: E402
from fleet_training.data import (  # noqa: E402
    default_cmapss_path,
    delay_feature_rows,
    delay_labels,
    engine_feature_rows,
    features_matrix,
    load_features,
    nycflights_dir,
    read_flights,
    split_by_month,
)
from fleet_training.package import (  # noqa: E402
    GOLDEN_FILE,
    MANIFEST_FILE,
    REPO,
    default_fleetscore_bin,
    feature_sets,
    write_package,
)

MODELS = ("delay-risk", "engine-rul", "engine-rul-p10", "engine-rul-p90", "engine-anomaly")


def reference_rows(feature_set: str, features: list[str], exe: Path, work: Path,
                   cache: dict) -> np.ndarray:
    """The reference rows of a model on ``feature_set`` (computed once per set)."""
    if feature_set not in cache:
        if feature_set == "delay-risk":
            nyc = nycflights_dir()
            rows = delay_labels(load_features(delay_feature_rows(exe, nyc, work), features),
                                read_flights(nyc))
            train, _ = split_by_month(rows, delay_risk.LAST_TRAIN_MONTH)
            cache[feature_set] = features_matrix(train, features)
        elif feature_set == "engine-health":
            rows = load_features(engine_feature_rows(exe, default_cmapss_path(), work), features)
            cache[feature_set] = features_matrix(rows, features)
        else:
            raise ValueError(f"no reference rows for feature set {feature_set!r}")
    return cache[feature_set]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=(*MODELS, "all"))
    ap.add_argument("--from", dest="source", required=True, help="published version to copy")
    ap.add_argument("--version", required=True, help="version to publish")
    ap.add_argument("--out", type=Path, default=REPO / "models")
    ap.add_argument("--fleetscore-bin", type=Path)
    args = ap.parse_args(argv)
    names = MODELS if args.model == "all" else (args.model,)
    for name in names:
        if (args.out / name / args.version / MANIFEST_FILE).exists():
            print(f"error: {name}/{args.version} is already published", file=sys.stderr)
            return 2

    exe = default_fleetscore_bin(args.fleetscore_bin)
    sets = feature_sets(exe)
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="fleetscore-profile-") as work_dir:
        for name in names:
            src = args.out / name / args.source
            m = json.loads((src / MANIFEST_FILE).read_text())
            golden = json.loads((src / GOLDEN_FILE).read_text())
            fs_name, fs_version = m["feature_set"]["name"], m["feature_set"]["version"]
            if sets[fs_name]["version"] != fs_version or sets[fs_name]["features"] != \
                    m["input"]["features"]:
                print(f"error: {name}/{args.source} was trained on {fs_name} {fs_version}; "
                      f"the binary computes {sets[fs_name]['version']}", file=sys.stderr)
                return 2
            rows = reference_rows(fs_name, m["input"]["features"], exe, Path(work_dir), cache)
            d = write_package(
                args.out, name=name, version=args.version,
                onnx_model=(src / m["model_file"]).read_bytes(),
                feature_set_name=fs_name, feature_set_version=fs_version,
                feature_names=m["input"]["features"], input_name=m["input"]["name"],
                output_name=m["output"]["name"], output_column=m["output"]["column"],
                meaning=m["output"]["meaning"], unit=m["output"]["unit"],
                golden_inputs=np.array(golden["inputs"], np.float32),
                tolerance=m["golden"]["tolerance"], stage=m["stage"], backend=m["backend"],
                metrics=m["metrics"],
                description=(f"{m['description']}. Version {args.version}: version "
                             f"{args.source}'s model with a drift profile of its "
                             f"{len(rows):,} reference rows (training/add_profile.py)"),
                created_at=created_at, profile_rows=rows,
            )
            new_golden = json.loads((d / GOLDEN_FILE).read_text())
            if new_golden != golden:
                raise SystemExit(f"{d}: golden outputs differ from {src}'s")
            print(f"published {d} ({len(rows):,} reference rows)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
