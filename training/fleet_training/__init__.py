"""Offline training helpers for fleetscore: feature-set lookup, ONNX export, model packages.

The package format is specified in ``models/README.md`` (``manifest.json`` format 1 plus
``golden.json``); :func:`write_package` is the one place that writes it.

    from fleet_training import feature_sets, export_lightgbm, write_package

    fs = feature_sets()["engine-health"]          # {"version": ..., "features": [...]}
    onx = export_lightgbm(model, len(fs["features"]))
    write_package("models", name="engine-rul", version="2026.11.24-1", onnx_model=onx, ...)
"""

from .package import (
    MANIFEST_FORMAT,
    default_fleetscore_bin,
    export_lightgbm,
    feature_sets,
    float32_exact_booster,
    make_batch_dims_dynamic,
    predict_column,
    write_package,
)

__all__ = [
    "MANIFEST_FORMAT",
    "default_fleetscore_bin",
    "export_lightgbm",
    "feature_sets",
    "float32_exact_booster",
    "make_batch_dims_dynamic",
    "predict_column",
    "write_package",
]
