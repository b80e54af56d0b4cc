"""openfaas engine: the functions of stack.yml on OpenFaaS CE, fixed at N replicas.

Scaling sets the labels com.openfaas.scale.min = max = N first (an autoscaler would move replicas back
inside the old bounds), then the Deployment's replicas. CE caps a function at
deployment.OPENFAAS_CE_MAX_REPLICAS (5): 8 replicas is refused, run it on knative or kubectl. CE probes
readiness on /_/health, so ready also means every pod answers /_/ready (model loaded), asked through
the API server's pod proxy as k8s/cluster/40-deploy.sh does. Requests go through the gateway
(OPENFAAS_URL, default the node's NodePort deployment.OPENFAAS_GATEWAY_NODEPORT) on /function/<name>.
"""

from __future__ import annotations

import os

from cloudpose.deployment import (
    FUNCTION_NAMES,
    OPENFAAS_CE_MAX_REPLICAS,
    OPENFAAS_GATEWAY_NODEPORT,
    OPENFAAS_NAMESPACE,
    PORT,
)

from .kubectl import KubectlEngine, poll


class OpenFaasEngine(KubectlEngine):
    namespace = OPENFAAS_NAMESPACE
    selector_label = "faas_function"

    def __init__(self, node: str | None = None, functions: tuple[str, ...] = FUNCTION_NAMES, gateway: str | None = None,
                 kubectl: str = "kubectl") -> None:  # fmt: skip
        super().__init__(node, functions, kubectl)
        self.gateway = (gateway or os.environ.get("OPENFAAS_URL", "")).rstrip("/")

    @property
    def base_url(self) -> str:
        return self.gateway or f"http://{self.node}:{OPENFAAS_GATEWAY_NODEPORT}"

    def endpoint(self, function: str) -> tuple[str, dict[str, str]]:
        return f"{self.base_url}/function/{function}", {}

    def scale_commands(self, replicas: int) -> list[list[str]]:
        if replicas > OPENFAAS_CE_MAX_REPLICAS:
            raise ValueError(
                f"OpenFaaS CE runs at most {OPENFAAS_CE_MAX_REPLICAS} replicas per function; "
                f"measure {replicas} replicas with --engine knative or --engine kubectl"
            )
        ns = ["-n", self.namespace]
        return [cmd for f in self.functions for cmd in (
            [self.kubectl, *ns, "label", "deployment", f, "--overwrite", f"com.openfaas.scale.min={replicas}", f"com.openfaas.scale.max={replicas}"],
            [self.kubectl, *ns, "scale", "deployment", f, f"--replicas={replicas}"],
        )]  # fmt: skip

    def model_ready(self, pod: str) -> bool:
        try:
            self.run("get", "--raw", f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{PORT}/proxy/_/ready", timeout=10)
            return True
        except RuntimeError:
            return False

    def wait_ready(self, timeout: float = 600) -> None:
        super().wait_ready(timeout)
        poll(lambda: all(self.model_ready(p) for p in self.replica_names()), timeout, "models loaded in every pod")
