#!/usr/bin/env bash
# Install Knative Serving with the Kourier ingress, pinned, and configure it for these experiments. Run
# where kubectl reaches the cluster (the controller). Safe to rerun (apply and merge patches).
#
#   ./31-knative.sh
#   KNATIVE_DOMAIN=pose.example.org REGISTRY=10.0.0.10:5000 ./31-knative.sh
set -euo pipefail

KNATIVE_VERSION="${KNATIVE_VERSION:-1.23.0}" # Serving and net-kourier release together (knative-vX.Y.Z)
# Services answer at <name>.<namespace>.<domain>: pose-json.cloudpose.cloudpose.test by default. `.test`
# is reserved (RFC 6761): nothing resolves it, clients send the Host header (docs/cluster.md).
KNATIVE_DOMAIN="${KNATIVE_DOMAIN:-cloudpose.test}"
KOURIER_NODEPORT=31080 # deployment.KOURIER_NODEPORT
REGISTRY="${REGISTRY:-}" # where the function images are pushed, if anywhere

serving="https://github.com/knative/serving/releases/download/knative-v${KNATIVE_VERSION}"
kourier="https://github.com/knative-extensions/net-kourier/releases/download/knative-v${KNATIVE_VERSION}"

echo "== Knative Serving $KNATIVE_VERSION"
kubectl apply -f "$serving/serving-crds.yaml"
kubectl wait --for=condition=Established crd/services.serving.knative.dev --timeout=120s
kubectl apply -f "$serving/serving-core.yaml"
for deploy in activator autoscaler controller webhook; do
  kubectl -n knative-serving rollout status "deploy/$deploy" --timeout=300s
done

echo "== Kourier $KNATIVE_VERSION"
kubectl apply -f "$kourier/kourier.yaml"
kubectl -n kourier-system rollout status deploy/3scale-kourier-gateway --timeout=300s
kubectl -n knative-serving rollout status deploy/net-kourier-controller --timeout=300s

echo "== configuration"
patch() { kubectl -n knative-serving patch configmap "$1" --type merge -p "$2"; }
patch config-network '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
patch config-domain "{\"data\":{\"$KNATIVE_DOMAIN\":\"\"}}"
# The functions' read-only root file system needs a writable /tmp: an emptyDir, behind this flag.
patch config-features '{"data":{"kubernetes.podspec-volumes-emptydir":"enabled"}}'
# Knative resolves image tags to digests by asking the registry; images imported into each node's
# containerd (ctr images import) exist in no registry, so skip resolution for their names' registry.
skip="kind.local,ko.local,dev.local,docker.io,index.docker.io${REGISTRY:+,${REGISTRY%%/*}}"
patch config-deployment "{\"data\":{\"registries-skipping-tag-resolving\":\"$skip\"}}"

# Kourier's Service asks for a LoadBalancer, which a kubeadm cluster lacks: serve it on a fixed NodePort.
kubectl -n kourier-system patch service kourier \
  -p "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":$KOURIER_NODEPORT}]}}"

echo "Knative ready: curl -H 'Host: pose-json.cloudpose.$KNATIVE_DOMAIN' http://<any node>:$KOURIER_NODEPORT/_/ready"
