"""The /score endpoint of fleetscore, written idiomatically in Python: FastAPI + pydantic +
onnxruntime, for the load benchmark (bench/http/run.sh). Same request and response shape for
explicit rows as the Rust service; same model file, same ONNX Runtime version.

    MODEL_DIR=service/tests/fixtures/models/engine-rul/1 \
        uvicorn peer:app --app-dir bench/http --host 127.0.0.1 --port 8081 --workers 2
"""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

MODEL_DIR = Path(os.environ.get("MODEL_DIR", "service/tests/fixtures/models/engine-rul/1"))
MANIFEST = json.loads((MODEL_DIR / "manifest.json").read_text())
FEATURES: list[str] = MANIFEST["input"]["features"]
INPUT = MANIFEST["input"]["name"]
OUTPUT = MANIFEST["output"]["name"]
COLUMN = MANIFEST["output"].get("column", 0)

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(MODEL_DIR / MANIFEST["model_file"]), options,
                               providers=["CPUExecutionProvider"])

app = FastAPI(title="fleetscore Python peer")


class ScoreRequest(BaseModel):
    model: str
    rows: list[dict[str, float]] = Field(min_length=1, max_length=1024)


class ScoreResponse(BaseModel):
    model: str
    model_version: str
    model_sha256: str
    feature_set: str
    feature_set_version: str
    predictions: list[float]
    scored_at: datetime


@app.post("/score", response_model=ScoreResponse)
def score(request: ScoreRequest) -> ScoreResponse:
    if request.model != MANIFEST["name"]:
        raise HTTPException(404, f"no model named {request.model!r} is serving")
    try:
        x = np.array([[row[name] for name in FEATURES] for row in request.rows], dtype=np.float32)
    except KeyError as e:
        raise HTTPException(422, f"missing feature {e.args[0]}") from None
    (out,) = session.run([OUTPUT], {INPUT: x})
    out = np.asarray(out).reshape(len(request.rows), -1)[:, COLUMN]
    return ScoreResponse(
        model=MANIFEST["name"],
        model_version=MANIFEST["version"],
        model_sha256=MANIFEST["sha256"],
        feature_set=MANIFEST["feature_set"]["name"],
        feature_set_version=MANIFEST["feature_set"]["version"],
        predictions=out.tolist(),
        scored_at=datetime.now(timezone.utc),
    )
