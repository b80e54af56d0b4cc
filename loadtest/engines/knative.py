"""knative engine: the Knative Services of k8s/knative/, with min-scale = max-scale = initial-scale = N.

Scaling patches the three annotations on the Service's template (all three, or the autoscaler keeps the
old bounds), which makes a new revision; ready = the Service is Ready and the newest ready revision has N
ready pods (Knative probes /_/ready through the queue-proxy). Requests go through Kourier on a node's
NodePort (deployment.KOURIER_NODEPORT) with the Service's host name in the Host header
(<function>.cloudpose.<domain>; 31-knative.sh sets the domain, cloudpose.test by default).
"""

from __future__ import annotations

import json

from cloudpose.deployment import FUNCTION_NAMES, KOURIER_NODEPORT

from .kubectl import KubectlEngine, poll

SCALE_ANNOTATIONS = ("min-scale", "max-scale", "initial-scale")


class KnativeEngine(KubectlEngine):
    def __init__(self, node: str | None = None, functions: tuple[str, ...] = FUNCTION_NAMES, domain: str = "cloudpose.test",
                 kubectl: str = "kubectl") -> None:  # fmt: skip
        super().__init__(node, functions, kubectl)
        self.domain = domain

    @property
    def base_url(self) -> str:
        return f"http://{self.node}:{KOURIER_NODEPORT}"

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        return f"{self.base_url}/function/{function}", {"Host": f"{function}.{self.namespace}.{self.domain}"}

    def scale_commands(self, replicas: int) -> list[list[str]]:
        annotations = {f"autoscaling.knative.dev/{a}": str(replicas) for a in SCALE_ANNOTATIONS}
        patch = json.dumps({"spec": {"template": {"metadata": {"annotations": annotations}}}}, separators=(",", ":"))
        return [
            [self.kubectl, "-n", self.namespace, "patch", "ksvc", f, "--type", "merge", "-p", patch]
            for f in self.functions
        ]

    def revision_pods(self, function: str) -> list[dict]:
        revision = self.run(
            "-n", self.namespace, "get", "ksvc", function, "-o", "jsonpath={.status.latestReadyRevisionName}"
        ).strip()
        out = self.run(
            "-n", self.namespace, "get", "pods", "-l", f"serving.knative.dev/revision={revision}", "-o", "json"
        )
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    def ready_count(self, function: str) -> int:
        return sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            for p in self.revision_pods(function)
        )

    def wait_ready(self, timeout: float = 600) -> None:
        for f in self.functions:
            self.run(
                "-n",
                self.namespace,
                "wait",
                f"ksvc/{f}",
                "--for=condition=Ready",
                f"--timeout={int(timeout)}s",
                timeout=timeout + 10,
            )
        poll(
            lambda: all(self.ready_count(f) >= self.desired for f in self.functions),
            timeout,
            "ready pods of the newest revision",
        )

    def replica_names(self) -> list[str]:
        return [p["metadata"]["name"] for f in self.functions for p in self.revision_pods(f)]
