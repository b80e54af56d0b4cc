"""Deployment facts with one source of truth. Manifests (stack.yml, k8s/, swarm/) repeat them where
their formats force it, and `tests/test_manifests.py` proves every copy agrees with these values."""

from __future__ import annotations

FUNCTION_NAMES = ("pose-json", "pose-annotate")
PORT = 8080  # every function container listens here ($PORT)
LOCAL_PORT = 60000  # the local default (both functions in one process)
CPU_LIMIT = "500m"  # every pod: request = limit (a fixed, measurable slice)
CPU_CORES = 0.5
MEMORY_LIMIT = "512Mi"
MEMORY_BYTES = 512 * 1024 * 1024
REPLICA_COUNTS = (1, 2, 4, 8)  # the experiment's fixed replica counts
OPENFAAS_CE_MAX_REPLICAS = 5  # OpenFaaS Community Edition caps a function here: 8 needs Knative or Deployments
HEALTH_PATH = "/_/health"
READY_PATH = "/_/ready"
IMAGE_REPOSITORY = "cloudpose"  # images are <registry>/cloudpose/<function>:<tag>
NAMESPACE = "cloudpose"  # kubeadm Deployments and Knative Services; OpenFaaS uses openfaas-fn
