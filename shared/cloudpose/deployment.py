"""Deployment facts with one source of truth. The manifests (stack.yml, k8s/, swarm/) are rendered from
them by `make manifests` (manifests.py), and `tests/test_manifests.py` proves every copy agrees.
Kept free of heavy imports: the load-test engines read it on machines without the models."""

from __future__ import annotations

FUNCTION_NAMES = ("pose-json", "pose-annotate", "detect-json", "detect-annotate", "photo-metadata", "photo-thumbnail")
PORT = 8080  # every function container listens here ($PORT)
LOCAL_PORT = 60000  # the local default (every function in one process)
CPU_LIMIT = "500m"  # every pod: request = limit (a fixed, measurable slice)
CPU_CORES = 0.5
MEMORY_LIMIT = "512Mi"
MEMORY_BYTES = 512 * 1024 * 1024
REPLICA_COUNTS = (1, 2, 4, 8)  # the experiment's fixed replica counts
OPENFAAS_CE_MAX_REPLICAS = 5  # OpenFaaS Community Edition caps a function here: 8 needs Knative or Deployments
HEALTH_PATH = "/_/health"
READY_PATH = "/_/ready"
METRICS_PATH = "/metrics"  # Prometheus text format (metrics.py)
# A pod's stop: preStop 5 s + POSE_DRAIN_SECONDS 2 s + POSE_SHUTDOWN_TIMEOUT 60 s (config.py) = 67 s, inside this.
TERMINATION_GRACE_S = 75
IMAGE_REPOSITORY = "cloudpose"  # images are <registry>/cloudpose/<function>:<tag>
NAMESPACE = "cloudpose"  # kubeadm Deployments and Knative Services; OpenFaaS uses openfaas-fn

# Added with the deployment manifests (stack.yml, k8s/): more facts those files repeat.
OPENFAAS_NAMESPACE = "openfaas-fn"  # where OpenFaaS CE deploys functions
NODE_PORTS = {name: 30080 + i for i, name in enumerate(FUNCTION_NAMES)}  # kubeadm Deployments: fixed NodePorts
OPENFAAS_GATEWAY_NODEPORT = 31112  # the OpenFaaS chart's gateway-external NodePort (its default)
KOURIER_NODEPORT = 31080  # Knative's Kourier ingress, pinned to a NodePort by k8s/cluster/31-knative.sh
RUN_AS_USER = 10001  # the images' non-root uid (template/cloudpose/Dockerfile) and the pods' runAsUser
REQUEST_TIMEOUT_S = 60  # the slowest request end to end: a 16-image annotate batch queued behind others
CONTAINER_CONCURRENCY = 4  # Knative: requests one pod takes at once (1 on the CPU, 3 decoding/queued)
KUBERNETES_MINOR = "1.34"  # what k8s/cluster/ installs; the manifests are validated against it and the newest
# The Docker build context of a function image (what `faas-cli build` assembles in build/<fn>/ from the
# template template/cloudpose/, and scripts/build-images.sh the same way): the template's files at the top,
# the function folder's handler.py in function/, and these folders in function/. wheels/ (a wheelhouse for
# requirements/serve.txt) and models/ (the prepared models) are staged at the repository top before a build
# and are not in git.
BUILD_CONTEXT = ("shared", "requirements", "wheels", "models")
STAGED_BUILD_CONTEXT = ("wheels", "models")
TEMPLATE = "cloudpose"  # the OpenFaaS template (template/cloudpose/): one Dockerfile for every function
SWARM_PORT = 8088  # the Docker Swarm gateway (nginx) on 127.0.0.1: loadtest/engines/swarm.py, swarm/
