"""kubectl engine: the plain Deployments of k8s/ (NodePort Services), scaled with `kubectl scale`.

Runs where kubectl reaches the cluster (the controller, or any machine with its kubeconfig). Ready =
the Deployment reports `replicas` ready pods, and its readiness probe is /_/ready (model loaded).
Requests go to a node's NodePort (deployment.NODE_PORTS): `--node` names it, else the first node's
InternalIP. kube-proxy balances connections, not requests: every Locust user keeps its own connection,
so many users reach every pod.

`scale_commands()` are the exact commands `scale()` runs (tests check them without a cluster);
the knative and openfaas engines reuse this class with their own commands.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from cloudpose.deployment import FUNCTION_NAMES, NAMESPACE, NODE_PORTS


class KubectlEngine:
    """The Engine protocol (loadtest.engines) over `kubectl`."""

    namespace = NAMESPACE
    selector_label = "app.kubernetes.io/name"

    def __init__(
        self, node: str | None = None, functions: tuple[str, ...] = FUNCTION_NAMES, kubectl: str = "kubectl"
    ) -> None:
        self.functions, self.kubectl, self._node = functions, kubectl, node
        self.desired = 0

    def run(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([self.kubectl, *args], check=False, capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise RuntimeError(f"kubectl {' '.join(args[:4])}…: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        return proc.stdout

    @property
    def node(self) -> str:
        if not self._node:
            self._node = self.run(
                "get", "nodes", "-o", 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'
            ).strip()
        return self._node

    @property
    def base_url(self) -> str:
        return f"http://{self.node}:{NODE_PORTS[self.functions[0]]}"

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        """Full URL and extra headers for requests to `function` (each function has its own NodePort)."""
        return f"http://{self.node}:{NODE_PORTS[function]}/function/{function}", {}

    def scale_commands(self, replicas: int) -> list[list[str]]:
        return [
            [self.kubectl, "-n", self.namespace, "scale", "deployment", f, f"--replicas={replicas}"]
            for f in self.functions
        ]

    def scale(self, replicas: int) -> None:
        for cmd in self.scale_commands(replicas):
            self.run(*cmd[1:])
        self.desired = replicas

    def ready_count(self, function: str) -> int:
        """Pods of `function` that are ready (= model loaded, by the readiness probe)."""
        out = self.run("-n", self.namespace, "get", "deployment", function, "-o", "jsonpath={.status.readyReplicas}")
        return int(out.strip() or 0)

    def wait_ready(self, timeout: float = 600) -> None:
        for f in self.functions:
            self.run(
                "-n",
                self.namespace,
                "rollout",
                "status",
                f"deployment/{f}",
                f"--timeout={int(timeout)}s",
                timeout=timeout + 10,
            )
        poll(lambda: all(self.ready_count(f) == self.desired for f in self.functions), timeout, "ready replicas")

    def pods(self, function: str) -> list[dict]:
        return json.loads(
            self.run("-n", self.namespace, "get", "pods", "-l", f"{self.selector_label}={function}", "-o", "json")
        )["items"]

    def replica_names(self) -> list[str]:
        """Running, not terminating pods: their names are their hostnames, which X-Served-By reports."""
        return [
            p["metadata"]["name"] for f in self.functions for p in self.pods(f)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip


def poll(check: Callable[[], bool], timeout: float, what: str, every: float = 2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not there after {timeout:.0f} s")
        time.sleep(every)
