"""Cross-references of the rendered Kubernetes manifests (k8s/overlays/*) with each other and with
the service itself.

Run by scripts/k8s-check.sh (which installs kustomize and this venv):

    KUSTOMIZE=... FLEETSCORE_BIN=target/release/fleetscore ORT_DYLIB_PATH=... pytest k8s/tests

- every object validates strictly (k8s/validate.py), and the validation does reject unknown fields;
- the ConfigMap's fleetscore.toml is the file the container reads, and the real binary starts
  with it (`serve --no-kafka`: every section parsed and validated, models loaded) and answers
  every probe's path on the port of `[http] addr`; with Kafka on, `[kafka]` passes the
  service's own validation (it gets as far as connecting) when given the pod's environment,
  and not without FLEETSCORE_INSTANCE_ID;
- Services, the PDB, the NetworkPolicy and the ServiceMonitor select the pods and name ports
  that exist; the Secret the token comes from exists (dev) or is left to the operator
  (production);
- the KEDA ScaledObject targets this overlay's StatefulSet, its consumer group, topics and
  brokers are the config's, its trigger metadata are keys KEDA's kafka scaler reads, its
  maxReplicaCount equals the declared partition count, and the lag threshold is the README's
  arithmetic;
- the termination grace period covers the service's bounded stop; the security context.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
K8S = HERE.parent
REPO = K8S.parent
sys.path.insert(0, str(K8S))
import validate  # noqa: E402  (k8s/validate.py)

OVERLAYS = ["dev", "production"]
KUSTOMIZE = os.environ.get("KUSTOMIZE", "kustomize")
BIN = Path(
    os.environ.get(
        "FLEETSCORE_BIN",
        Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "fleetscore",
    )
)
PARTITIONS_ANNOTATION = "fleetscore.io/input-partitions"

# The lag threshold's arithmetic (k8s/README.md, "Autoscaling"; BENCHMARKS.md 2026-11-30
# session 11: 41,212 events/s sustained per instance, exactly-once, 20 ms commits).
MEASURED_EVENTS_PER_S = 40_000
PLANNED_EVENTS_PER_S = 20_000  # half load: where the latency targets are measured
CATCH_UP_SECONDS = 5

# The service's stop, beyond shutdown_timeout_ms (service/src/lifecycle.rs
# PIPELINE_STOP_MARGIN + SUPERVISOR_MARGIN, cli/serve.rs runtime shutdown).
STOP_MARGIN_S = 3 + 2 + 1
DEFAULT_SHUTDOWN_TIMEOUT_MS = 20_000

# Metadata keys KEDA's kafka scaler reads from a trigger (kedacore/keda v2.20.2,
# pkg/scalers/kafka_scaler.go, kafkaMetadata); anything else is ignored without a word.
KEDA_KAFKA_KEYS = {
    "bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv",
    "topic", "topicFromEnv", "partitionLimitation", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag",
    "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions", "version", "tls", "unsafeSsl", "sasl",
    "saslTokenProvider", "awsRegion",
}


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Rendered:
    overlay: str
    docs: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    @property
    def statefulset(self) -> dict:
        return self.one("StatefulSet")

    @property
    def pod(self) -> dict:
        return self.statefulset["spec"]["template"]

    @property
    def container(self) -> dict:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def config_path(self) -> str:
        args = self.container.get("args", [])
        assert args[:2] == ["serve", "--config"] and len(args) == 3, args
        return args[2]

    @property
    def configmap(self) -> dict:
        return self.one("ConfigMap")

    @property
    def config_text(self) -> str:
        return self.configmap["data"][Path(self.config_path).name]

    @property
    def config(self) -> dict:
        return tomllib.loads(self.config_text)

    @property
    def partitions(self) -> int:
        return int(self.statefulset["metadata"]["annotations"][PARTITIONS_ANNOTATION])

    def env(self, name: str) -> dict:
        found = [e for e in self.container.get("env", []) if e["name"] == name]
        assert len(found) == 1, f"{self.overlay}: env {name} set {len(found)} times"
        return found[0]


_rendered: dict[str, Rendered] = {}


def render(overlay: str) -> Rendered:
    if overlay not in _rendered:
        out = subprocess.run(
            [KUSTOMIZE, "build", str(K8S / "overlays" / overlay)],
            check=True, capture_output=True, text=True,
        ).stdout
        _rendered[overlay] = Rendered(overlay, [d for d in yaml.safe_load_all(out) if d])
    return _rendered[overlay]


@pytest.fixture(params=OVERLAYS)
def r(request) -> Rendered:
    return render(request.param)


@pytest.fixture(scope="session")
def crds() -> validate.CrdSchemas:
    return validate.CrdSchemas()


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", selector).items())


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------------------------
# Strict schema validation


def test_every_object_validates_strictly(r: Rendered, crds):
    errors = [e for d in r.docs for e in validate.validate_object(d, validate.default_versions(), crds)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "kind, path, field",
    [
        ("StatefulSet", ["spec", "template", "spec", "containers", 0, "securityContext"], "readOnlyRootFS"),
        ("ScaledObject", ["spec", "triggers", 0], "bogus"),
        ("ScaledObject", ["spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp"], "stabilisationWindowSeconds"),
        ("ServiceMonitor", ["spec", "endpoints", 0], "paht"),
        ("ServiceMonitor", ["metadata"], "label"),
        ("PodDisruptionBudget", ["spec"], "maxUnavailible"),
    ],
)
def test_strict_validation_rejects_an_unknown_field(kind, path, field, crds):
    obj = copy.deepcopy(render("production").one(kind))
    assert not validate.validate_object(obj, ["1.30"], crds)
    node = obj
    for step in path:
        node = node[step]
    node[field] = 1
    errors = validate.validate_object(obj, ["1.30"], crds)
    assert errors and field in errors[0], errors


def test_a_kind_without_a_schema_is_an_error(crds):
    obj = {"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}
    assert "no schema" in validate.validate_object(obj, ["1.30"], crds)[0]


# ---------------------------------------------------------------------------------------------
# The workload and its configuration


def test_the_configmap_is_the_file_the_container_reads(r: Rendered):
    config_dir = str(Path(r.config_path).parent)
    mounts = {m["mountPath"]: m for m in r.container["volumeMounts"]}
    assert config_dir in mounts, f"{r.config_path} is not on a mounted volume"
    volume = next(v for v in r.pod["spec"]["volumes"] if v["name"] == mounts[config_dir]["name"])
    assert volume["configMap"]["name"] == r.configmap["metadata"]["name"]
    assert Path(r.config_path).name in r.configmap["data"]
    assert mounts[config_dir].get("readOnly") is True


def test_the_container_port_is_the_configs_http_port(r: Rendered):
    addr = r.config["http"]["addr"]
    assert addr.startswith("0.0.0.0:"), f"[http] addr {addr}: probes and Services need every interface"
    ports = {p["name"]: p for p in r.container["ports"]}
    assert ports["http"]["containerPort"] == port_of(addr)
    # The environment wins over the file (the image sets FLEETSCORE_HTTP_ADDR too).
    assert r.env("FLEETSCORE_HTTP_ADDR")["value"] == addr
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        port = r.container[probe]["httpGet"]["port"]
        assert port in ports or port in {p["containerPort"] for p in ports.values()}, (probe, port)


def test_probes_use_the_services_health_endpoints(r: Rendered):
    c = r.container
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Readiness waits for the models and the restore of the assigned partitions; so does
    # start-up, with room for a long restore.
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_identity_is_the_pod_name_and_membership_is_static(r: Rendered):
    env = r.env("FLEETSCORE_INSTANCE_ID")
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    kafka = r.config["kafka"]
    assert kafka.get("static_membership") is True
    assert "instance_id" not in kafka, "instance_id must come from the pod's name, not the file"
    sts = r.statefulset["spec"]
    assert sts["podManagementPolicy"] == "Parallel"
    assert not sts.get("volumeClaimTemplates"), "state is restored from the changelog: no volume"
    # A restart must rejoin within the session timeout; the broker accepts 6 s to 30 min
    # (group.min/max.session.timeout.ms defaults).
    session = int(kafka.get("consumer", {}).get("session.timeout.ms", 10_000))
    assert 6_000 <= session <= 1_800_000


def test_the_grace_period_covers_the_bounded_stop(r: Rendered):
    spec = r.pod["spec"]
    shutdown_s = r.config["kafka"].get("shutdown_timeout_ms", DEFAULT_SHUTDOWN_TIMEOUT_MS) / 1000
    pre_stop = r.container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    needed = pre_stop + shutdown_s + STOP_MARGIN_S
    assert spec["terminationGracePeriodSeconds"] > needed + 5, (spec["terminationGracePeriodSeconds"], needed)


def test_the_security_context(r: Rendered):
    pod = r.pod["spec"]["securityContext"]
    c = r.container["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"]["drop"] == ["ALL"]
    assert c.get("privileged", False) is False
    tmp = [m for m in r.container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp, "/tmp must be writable (an emptyDir) under a read-only root"
    volume = next(v for v in r.pod["spec"]["volumes"] if v["name"] == tmp[0]["name"])
    assert "emptyDir" in volume
    assert r.pod["spec"]["automountServiceAccountToken"] is False


def _quantity(q: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit, factor in units.items():
        if q.endswith(unit):
            return float(q[: -len(unit)]) * factor
    return float(q)


def test_requests_and_limits_are_set(r: Rendered):
    res = r.container["resources"]
    for what in ("cpu", "memory"):
        assert _quantity(res["requests"][what]) <= _quantity(res["limits"][what])
    # The HTTP bodies' bound (2 x concurrency_limit x max_body_bytes) fits under the limit.
    http = r.config["http"]
    bodies = 2 * http.get("concurrency_limit", 1024) * http.get("max_body_bytes", 4 << 20)
    assert bodies < _quantity(res["limits"]["memory"]) / 2


def test_the_admin_token_comes_from_the_secret(r: Rendered):
    ref = r.env("FLEETSCORE_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "token"
    assert "admin_token" not in r.config["http"], "no token in the ConfigMap"
    secrets = r.of_kind("Secret")
    if r.overlay == "dev":
        secret = r.one("Secret", ref["name"])
        assert ref["name"].startswith("fleetscore-admin")
        assert base64.b64decode(secret["data"]["token"]).decode().startswith("dev-only")
    else:
        assert not secrets, "production secrets are the operator's, never committed"
        assert ref["name"] == "fleetscore-admin"


def test_peers_are_the_statefulsets_pods(r: Rendered):
    sts = r.statefulset
    max_replicas = (
        r.one("ScaledObject")["spec"]["maxReplicaCount"]
        if r.of_kind("ScaledObject")
        else sts["spec"]["replicas"]
    )
    peers = r.config["fleet_view"]["peers"]
    names = [f"{sts['metadata']['name']}-{i}" for i in range(max_replicas)]
    assert [p["name"] for p in peers] == names
    for p in peers:
        assert p["url"].startswith(f"http://{p['name']}.{sts['spec']['serviceName']}:{port_of(r.config['http']['addr'])}/")


# ---------------------------------------------------------------------------------------------
# Services, PDB, NetworkPolicy, ServiceMonitor


def test_services_select_the_pods_and_name_the_http_port(r: Rendered):
    labels = r.pod["metadata"]["labels"]
    assert labels_match(r.statefulset["spec"]["selector"], labels)
    headless = r.one("Service", r.statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    for svc in r.of_kind("Service"):
        assert labels_match(svc["spec"]["selector"], labels), svc["metadata"]["name"]
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in {p["name"] for p in r.container["ports"]}
    assert labels_match(r.one("PodDisruptionBudget")["spec"]["selector"], labels)
    assert r.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_servicemonitor_scrapes_each_pod_once(r: Rendered):
    monitors = r.of_kind("ServiceMonitor")
    if r.overlay == "dev":
        assert not monitors
        return
    sm = monitors[0]
    selected = [s for s in r.of_kind("Service") if labels_match(sm["spec"]["selector"], s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in selected] == [r.statefulset["spec"]["serviceName"]]
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def test_the_networkpolicy_lets_in_http_and_out_to_kafka_and_dns(r: Rendered):
    np = r.one("NetworkPolicy")
    assert labels_match(np["spec"]["podSelector"], r.pod["metadata"]["labels"])
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"http"}
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    broker_ports = {port_of(b) for b in r.config["kafka"]["brokers"].split(",")}
    assert broker_ports <= egress_ports, (broker_ports, egress_ports)
    assert 53 in egress_ports


# ---------------------------------------------------------------------------------------------
# KEDA


def test_the_scaledobject_targets_the_workload_and_the_configs_group(r: Rendered):
    scaled = r.of_kind("ScaledObject")
    if r.overlay == "dev":
        assert not scaled, "dev runs one pod, no autoscaling"
        assert r.statefulset["spec"]["replicas"] <= r.partitions
        return
    so = scaled[0]
    sts = r.statefulset
    target = so["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "StatefulSet", sts["metadata"]["name"])
    assert "replicas" not in sts["spec"], "KEDA's HPA owns the replica count"
    kafka = r.config["kafka"]
    assert so["spec"]["maxReplicaCount"] == r.partitions
    assert int(so["metadata"]["annotations"][PARTITIONS_ANNOTATION]) == r.partitions
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    topics = []
    for trigger in so["spec"]["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        unknown = set(meta) - KEDA_KAFKA_KEYS
        assert not unknown, f"KEDA's kafka scaler ignores {unknown}"
        assert meta["consumerGroup"] == kafka["group_id"]
        assert meta["bootstrapServers"] == kafka["brokers"]
        assert meta["offsetResetPolicy"] == "earliest", "the service's auto.offset.reset"
        assert meta.get("allowIdleConsumers", "false") == "false"
        assert int(meta["lagThreshold"]) == (MEASURED_EVENTS_PER_S - PLANNED_EVENTS_PER_S) * CATCH_UP_SECONDS
        topics.append(meta["topic"])
    assert topics[0] == kafka["telemetry_topic"]
    assert set(topics) <= {kafka["telemetry_topic"], kafka["schedule_topic"]}
    assert len(set(topics)) == len(topics)


# ---------------------------------------------------------------------------------------------
# The real service, with the ConfigMap's file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode()


class Service:
    """`fleetscore serve --config <the ConfigMap's file>` as the pod would run it, but with HTTP
    on a free loopback port and the repository's models."""

    def __init__(self, r: Rendered, tmp: Path, *, kafka: bool, env: dict[str, str]):
        if not BIN.exists():
            pytest.fail(f"no fleetscore binary at {BIN} (set FLEETSCORE_BIN)")
        self.config = tmp / Path(r.config_path).name
        self.config.write_text(r.config_text)
        self.log = tmp / f"serve-{'kafka' if kafka else 'nokafka'}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSCORE_")}
        full_env.update(
            FLEETSCORE_HTTP_ADDR="127.0.0.1:0",
            FLEETSCORE_MODELS_DIR=str(REPO / "models"),
            RUST_LOG="info",
            **env,
        )
        args = [str(BIN), "serve", "--config", str(self.config)] + ([] if kafka else ["--no-kafka"])
        self.proc = subprocess.Popen(args, env=full_env, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        self.base = None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_listening(self, timeout: float = 30) -> str | None:
        """The base URL, or None if the process exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"HTTP listening addr=(\S+)", self.text())
            if m:
                self.base = f"http://{m.group(1)}"
                return self.base
            if self.proc.poll() is not None:
                return None
            time.sleep(0.1)
        pytest.fail(f"not listening after {timeout} s:\n{self.text()[-3000:]}")

    def wait_status(self, path: str, status: int, timeout: float = 60) -> tuple[int, str, str]:
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = _get(self.base + path)
            if got[0] == status:
                return got
            time.sleep(0.25)
        pytest.fail(f"GET {path}: {got} after {timeout} s, expected {status}:\n{self.text()[-3000:]}")

    def stop(self, within: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop within {within} s of SIGTERM:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _pod_env(r: Rendered) -> dict[str, str]:
    return {"FLEETSCORE_INSTANCE_ID": f"{r.statefulset['metadata']['name']}-0", "FLEETSCORE_ADMIN_TOKEN": "test-token"}


def test_the_service_starts_with_the_configmap_and_answers_every_probe(r: Rendered, tmp_path):
    if not os.environ.get("ORT_DYLIB_PATH"):
        pytest.fail("ORT_DYLIB_PATH is not set: no model would load (scripts/python-env.sh --print)")
    svc = Service(r, tmp_path, kafka=False, env=_pod_env(r))
    try:
        assert svc.wait_listening(), f"the service refused the ConfigMap's file:\n{svc.text()}"
        c = r.container
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            status, _, body = svc.wait_status(c[probe]["httpGet"]["path"], 200)
        for sm in r.of_kind("ServiceMonitor"):
            for endpoint in sm["spec"]["endpoints"]:
                status, ctype, body = svc.wait_status(endpoint["path"], 200)
                assert ctype.startswith("text/plain") and "fleetscore_" in body
        # The admin token from the environment is the one checked.
        req = urllib.request.Request(svc.base + "/admin/models/engine-rul/rollback", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        assert refused.value.code == 401, "admin must be on (token from the Secret) and refuse a call without it"
        grace = r.pod["spec"]["terminationGracePeriodSeconds"]
        assert svc.stop(within=grace) == 0, svc.text()[-3000:]
    finally:
        svc.kill()


def test_the_kafka_section_passes_the_services_checks_with_the_pods_environment(r: Rendered, tmp_path):
    closed = f"127.0.0.1:{_free_port()}"  # nothing listens: the service waits for a broker
    svc = Service(r, tmp_path, kafka=True, env={**_pod_env(r), "FLEETSCORE_KAFKA_BROKERS": closed})
    try:
        assert svc.wait_listening(), f"[kafka] refused:\n{svc.text()}"
        status, _, body = svc.wait_status("/readyz", 503, timeout=10)
        assert json.loads(body)["reason"] == f"connecting to Kafka at {closed}"
        grace = r.pod["spec"]["terminationGracePeriodSeconds"]
        assert svc.stop(within=grace) == 0, svc.text()[-3000:]
    finally:
        svc.kill()

    # Without the downward API's variable the same file is refused: the pod needs it.
    env = _pod_env(r)
    del env["FLEETSCORE_INSTANCE_ID"]
    svc = Service(r, tmp_path, kafka=True, env={**env, "FLEETSCORE_KAFKA_BROKERS": closed})
    try:
        assert svc.wait_listening(timeout=30) is None
        assert svc.proc.wait(timeout=10) != 0
        assert "static_membership = true needs instance_id" in svc.text()
    finally:
        svc.kill()
