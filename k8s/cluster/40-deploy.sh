#!/usr/bin/env bash
# Deploy the functions one way with N replicas each, after removing the other ways (they share names, and
# two platforms on the same workers would spoil each other's measurements). Waits until every replica has
# loaded its model. Safe to rerun; rerun with another N to rescale.
#
#   ./40-deploy.sh k8s 4         # plain Deployments + NodePorts  (kubectl apply -k k8s/overlays/replicas-4)
#   ./40-deploy.sh knative 8     # Knative Services               (k8s/knative/overlays/replicas-8)
#   ./40-deploy.sh openfaas 2    # OpenFaaS CE via faas-cli       (stack.yml; at most 5 replicas)
#
# REGISTRY, TAG: where the images are, <REGISTRY>/cloudpose/<function>:<TAG> (default: cloudpose/<function>:
# latest, as imported into each node's containerd). FUNCTIONS: which to run (default all six; one function at
# 8 replicas needs 4 CPUs of the workers: name only the functions an experiment measures, e.g. FUNCTIONS=detect-json).
set -euo pipefail

usage() {
  echo "usage: $0 k8s|knative|openfaas 1|2|4|8" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
mode="$1"
replicas="$2"
case "$replicas" in 1 | 2 | 4 | 8) ;; *) usage ;; esac # deployment.REPLICA_COUNTS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REGISTRY="${REGISTRY:-}"
TAG="${TAG:-latest}"
ALL_FUNCTIONS=(pose-json pose-annotate detect-json detect-annotate photo-metadata photo-thumbnail) # deployment.FUNCTION_NAMES
read -ra FUNCTIONS <<<"${FUNCTIONS:-${ALL_FUNCTIONS[*]}}"
NS=cloudpose           # deployment.NAMESPACE
FAAS_NS=openfaas-fn    # deployment.OPENFAAS_NAMESPACE
OPENFAAS_CE_MAX=5      # deployment.OPENFAAS_CE_MAX_REPLICAS

# Render a kustomization with the chosen images (kustomize `images:` in effect, without editing files).
render() {
  kubectl kustomize "$1" |
    sed -E "s#(image: )cloudpose/([a-z-]+):latest#\\1${REGISTRY:+${REGISTRY}/}cloudpose/\\2:${TAG}#"
}

selected() { [[ " ${FUNCTIONS[*]} " == *" $1 "* ]]; }

remove_k8s() {
  kubectl -n "$NS" delete deployment "${ALL_FUNCTIONS[@]}" --ignore-not-found
  for fn in "${ALL_FUNCTIONS[@]}"; do # only our NodePort Services: Knative owns Services of the same names
    if [[ "$(kubectl -n "$NS" get service "$fn" -o jsonpath='{.spec.type}' 2>/dev/null || true)" == NodePort ]]; then
      kubectl -n "$NS" delete service "$fn"
    fi
  done
}

remove_knative() {
  if kubectl get crd services.serving.knative.dev >/dev/null 2>&1; then
    kubectl -n "$NS" delete ksvc "${ALL_FUNCTIONS[@]}" --ignore-not-found --wait=true
    # The garbage collector removes Knative's own Services (ExternalName, same names) a little later; ours
    # must not be applied over them, or it would inherit their owner and be collected too.
    local fn deadline=$((SECONDS + 120))
    for fn in "${ALL_FUNCTIONS[@]}"; do
      while [[ "$(kubectl -n "$NS" get service "$fn" -o jsonpath='{.spec.type}' 2>/dev/null || true)" == ExternalName ]]; do
        ((SECONDS < deadline)) || { echo "Knative's service/$fn is still there" >&2 && exit 1; }
        sleep 2
      done
    done
  fi
}

remove_openfaas() {
  kubectl -n "$FAAS_NS" delete deployment,service "${ALL_FUNCTIONS[@]}" --ignore-not-found 2>/dev/null || true
}

# Wait until each pod of $2 in namespace $1 answers /_/ready (the model is loaded), through the API
# server's pod proxy: no port-forward, no curl in the image, and it works whatever probe the platform sets.
wait_models() {
  local ns="$1" selector="$2" deadline=$((SECONDS + 300)) pod
  for pod in $(kubectl -n "$ns" get pods -l "$selector" --field-selector=status.phase=Running -o name); do
    until kubectl get --raw "/api/v1/namespaces/$ns/pods/${pod#pod/}:8080/proxy/_/ready" >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then
        echo "$pod: model not ready after 5 minutes (kubectl -n $ns logs $pod)" >&2
        exit 1
      fi
      sleep 2
    done
    echo "ready: $pod"
  done
}

case "$mode" in
  k8s)
    remove_knative
    remove_openfaas
    render "$ROOT/k8s/overlays/replicas-$replicas" | kubectl apply -f -
    for fn in "${ALL_FUNCTIONS[@]}"; do
      selected "$fn" || kubectl -n "$NS" scale deployment "$fn" --replicas=0
    done
    for fn in "${FUNCTIONS[@]}"; do
      kubectl -n "$NS" rollout status "deployment/$fn" --timeout=600s
      wait_models "$NS" "app.kubernetes.io/name=$fn"
    done
    node="$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
    echo "pose-json:       http://$node:30080/   pose-annotate:   http://$node:30081/   (any node's address)"
    echo "detect-json:     http://$node:30082/   detect-annotate: http://$node:30083/"
    echo "photo-metadata:  http://$node:30084/   photo-thumbnail: http://$node:30085/"
    ;;
  knative)
    remove_k8s
    remove_openfaas
    render "$ROOT/k8s/knative/overlays/replicas-$replicas" | kubectl apply -f -
    for fn in "${ALL_FUNCTIONS[@]}"; do
      selected "$fn" || kubectl -n "$NS" delete ksvc "$fn" --ignore-not-found
    done
    for fn in "${FUNCTIONS[@]}"; do
      kubectl -n "$NS" wait "ksvc/$fn" --for=condition=Ready --timeout=600s
      # all min-scale pods of the latest revision, each with its model loaded
      revision="$(kubectl -n "$NS" get ksvc "$fn" -o jsonpath='{.status.latestReadyRevisionName}')"
      selector="serving.knative.dev/revision=$revision"
      deadline=$((SECONDS + 600))
      until (($(kubectl -n "$NS" get pods -l "$selector" --field-selector=status.phase=Running -o name | wc -l) >= replicas)); do
        ((SECONDS < deadline)) || { echo "$fn: fewer than $replicas pods running after 10 minutes" >&2 && exit 1; }
        sleep 2
      done
      wait_models "$NS" "$selector"
      kubectl -n "$NS" get ksvc "$fn" -o jsonpath='{.status.url}{"\n"}'
    done
    echo "call through Kourier: curl -H 'Host: <host of the URL above>' http://<any node>:31080/"
    ;;
  openfaas)
    if ((replicas > OPENFAAS_CE_MAX)); then
      echo "OpenFaaS CE runs at most $OPENFAAS_CE_MAX replicas per function: use knative or k8s for $replicas" >&2
      exit 2
    fi
    remove_k8s
    remove_knative
    filters=() # faas-cli takes one --filter: pass it only when one function is chosen
    if ((${#FUNCTIONS[@]} == 1)); then filters=(--filter "${FUNCTIONS[0]}"); fi
    for fn in "${ALL_FUNCTIONS[@]}"; do
      selected "$fn" || kubectl -n "$FAAS_NS" delete deployment,service "$fn" --ignore-not-found
    done
    (cd "$ROOT" && REGISTRY="${REGISTRY:-docker.io}" TAG="$TAG" REPLICAS="$replicas" faas-cli deploy -f stack.yml "${filters[@]}")
    for fn in "${FUNCTIONS[@]}"; do
      # labels first (min = max = N), then the count: an autoscaler keeps replicas inside those bounds
      kubectl -n "$FAAS_NS" label deployment "$fn" --overwrite \
        "com.openfaas.scale.min=$replicas" "com.openfaas.scale.max=$replicas"
      kubectl -n "$FAAS_NS" scale deployment "$fn" --replicas="$replicas"
      kubectl -n "$FAAS_NS" rollout status "deployment/$fn" --timeout=600s
      wait_models "$FAAS_NS" "faas_function=$fn"
    done
    echo "through the gateway: \$OPENFAAS_URL/function/pose-json and \$OPENFAAS_URL/function/pose-annotate"
    ;;
  *) usage ;;
esac
echo "which pod answered: the X-Served-By response header; per-pod counts: docs/cluster.md"
