"""Strict schema validation of rendered manifests (kustomize build output).

    python k8s/validate.py [--kubernetes-version 1.30 ...] RENDERED.yaml...

Every object must validate, in strict mode (an unknown field anywhere is an error), against:

- built-in kinds: the Kubernetes JSON schemas that `kubernetes-validate` (PyPI) ships, for
  each Kubernetes version asked for (default: 1.30, the oldest this deployment supports — the
  preStop `sleep` action — and the newest the package knows);
- custom resources: the `openAPIV3Schema` of the CRDs vendored in `k8s/schemas/crds/`
  (KEDA's ScaledObject, the Prometheus Operator's ServiceMonitor), made strict here:
  `kubernetes-validate` has no schema for them and only *warns* about an unknown kind, so it
  cannot be used for these. A CRD schema is structural (Kubernetes prunes every field it does
  not declare, unless `x-kubernetes-preserve-unknown-fields`), so a field it does not declare
  is one the API server would silently drop: exactly what strict mode must catch. Every
  object schema that declares `properties` and neither `additionalProperties` nor
  `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`; `metadata` is
  checked against Kubernetes' ObjectMeta (strict) instead of the CRD's bare `type: object`.

A kind with no schema at all is an error, never a warning. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
CRD_DIR = HERE / "schemas" / "crds"
OLDEST_VERSION = "1.30"
DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
OBJECT_META = DEFINITIONS_ID + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def default_versions() -> list[str]:
    newest = kv_utils.major_minor(kv_utils.latest_version())
    return [OLDEST_VERSION] if newest == OLDEST_VERSION else [OLDEST_VERSION, newest]


def strict(schema: Any) -> Any:
    """A copy of a structural OpenAPI v3 schema in which undeclared fields are errors."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        out["additionalProperties"] = False
    return out


class CrdSchemas:
    """(apiVersion, kind) -> strict JSON schema, from the vendored CRDs."""

    def __init__(self, crd_dir: Path = CRD_DIR) -> None:
        self.schemas: dict[tuple[str, str], dict] = {}
        self.sources: dict[tuple[str, str], str] = {}
        for path in sorted(crd_dir.glob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                    schema.setdefault("properties", {})["metadata"] = {"$ref": OBJECT_META}
                    schema["required"] = sorted(
                        set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"}
                    )
                    self.schemas[key] = schema
                    self.sources[key] = path.name

    def get(self, api_version: str, kind: str) -> dict | None:
        return self.schemas.get((api_version, kind))


def _definitions(version: str) -> Resource:
    """Kubernetes' strict ObjectMeta & co. for `version`, as kubernetes-validate ships them."""
    versions = [
        v
        for v in kv_utils.all_versions()
        if kv_utils.major_minor(v) <= kv_utils.major_minor(version)
    ]
    contents = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{versions[-1]}-local-strict/_definitions.json", version
    )
    return Resource.from_contents(contents)


def name_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


def validate_object(
    obj: dict, versions: Iterable[str], crds: CrdSchemas
) -> list[str]:
    """Every error of `obj`, one line each (empty: valid)."""
    errors: list[str] = []
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    crd_schema = crds.get(api_version, kind)
    for version in versions:
        if crd_schema is not None:
            registry = Registry().with_resource(DEFINITIONS_ID, _definitions(version))
            validator = jsonschema.Draft202012Validator(crd_schema, registry=registry)
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in e.path) or "(root)"
                errors.append(f"{name_of(obj)} [CRD {api_version} {kind}, k8s {version}]: {path}: {e.message}")
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            errors.append(f"{name_of(obj)} [k8s {version}, strict]: {path}: {e.message}")
        except kv_utils.SchemaNotFoundError as e:
            errors.append(f"{name_of(obj)}: no schema: {e.message} (and no vendored CRD)")
    return errors


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--kubernetes-version",
        "-k",
        action="append",
        dest="versions",
        help=f"validate against this Kubernetes version (repeatable; default {' and '.join(default_versions())})",
    )
    args = parser.parse_args(argv)
    versions = args.versions or default_versions()
    crds = CrdSchemas()
    failed = 0
    for path in args.files:
        objects = load(path)
        if not objects:
            print(f"ERROR {path}: no objects")
            failed += 1
            continue
        for obj in objects:
            errors = validate_object(obj, versions, crds)
            if errors:
                failed += 1
                for line in errors:
                    print(f"ERROR {path}: {line}")
            else:
                against = (
                    f"CRD {crds.sources[(obj['apiVersion'], obj['kind'])]}"
                    if crds.get(obj["apiVersion"], obj["kind"]) is not None
                    else "Kubernetes"
                )
                print(f"ok    {path.name}: {name_of(obj)} ({against} schema, strict, k8s {', '.join(versions)})")
    if failed:
        print(f"{failed} object(s) failed strict validation")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
