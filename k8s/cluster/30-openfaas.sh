#!/usr/bin/env bash
# Install OpenFaaS Community Edition with helm, and faas-cli, then log faas-cli in. Run where kubectl
# reaches the cluster (the controller). Safe to rerun (`helm upgrade --install`).
#
#   ./30-openfaas.sh
#
# CE limits that shape the experiments: at most 5 replicas per function (deployment.OPENFAAS_CE_MAX_REPLICAS:
# the 8-replica runs use Knative or the plain Deployments), function images are always pulled (push them to
# a registry every node reaches), and both probes use the function's health path with fixed 1-second
# timeouts.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.18.6}"
OPENFAAS_CHART_VERSION="${OPENFAAS_CHART_VERSION:-14.2.124}" # helm chart openfaas/openfaas
FAAS_CLI_VERSION="${FAAS_CLI_VERSION:-0.17.8}"
GATEWAY_NODEPORT=31112 # deployment.OPENFAAS_GATEWAY_NODEPORT
# deployment.REQUEST_TIMEOUT_S = 60: the gateway may wait that long for a function (upstream), and reads
# and writes get a second more, so the function's own 60 s budget (stack.yml) ends first.
UPSTREAM_TIMEOUT=60s
READ_WRITE_TIMEOUT=61s

sudo_if_needed() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! helm version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
  echo "== helm $HELM_VERSION"
  curl -fsSL "https://raw.githubusercontent.com/helm/helm/${HELM_VERSION}/scripts/get-helm-3" |
    DESIRED_VERSION="$HELM_VERSION" bash
fi

if [[ "$(faas-cli version --short-version 2>/dev/null || true)" != "$FAAS_CLI_VERSION" ]]; then
  echo "== faas-cli $FAAS_CLI_VERSION"
  case "$(uname -m)" in
    x86_64) asset=faas-cli ;;
    aarch64 | arm64) asset=faas-cli-arm64 ;;
    *) echo "no faas-cli build for $(uname -m)" >&2 && exit 1 ;;
  esac
  tmp="$(mktemp)"
  curl -fsSL -o "$tmp" "https://github.com/openfaas/faas-cli/releases/download/${FAAS_CLI_VERSION}/${asset}"
  sudo_if_needed install -m 0755 "$tmp" /usr/local/bin/faas-cli
  rm -f "$tmp"
fi

echo "== namespaces openfaas, openfaas-fn (as faas-netes' namespaces.yml makes them, before the chart)"
kubectl apply -f - <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: openfaas
  labels: {role: openfaas-system, access: openfaas-system}
---
apiVersion: v1
kind: Namespace
metadata:
  name: openfaas-fn
  labels: {role: openfaas-fn}
YAML

echo "== OpenFaaS CE (chart $OPENFAAS_CHART_VERSION)"
helm repo add openfaas https://openfaas.github.io/faas-netes/ --force-update >/dev/null
helm repo update openfaas >/dev/null
# gateway.directFunctions=false: the gateway hands each invocation to faas-netes, which picks a function
# endpoint per request. With true, it calls the function's Service and keep-alive connections pin requests
# to a few pods (the chart's README, "Endpoint load-balancing"): uneven replicas would spoil the scaling runs.
helm upgrade --install openfaas openfaas/openfaas \
  --version "$OPENFAAS_CHART_VERSION" \
  --namespace openfaas \
  --set functionNamespace=openfaas-fn \
  --set generateBasicAuth=true \
  --set serviceType=NodePort \
  --set gateway.nodePort="$GATEWAY_NODEPORT" \
  --set gateway.directFunctions=false \
  --set gateway.upstreamTimeout="$UPSTREAM_TIMEOUT" \
  --set gateway.readTimeout="$READ_WRITE_TIMEOUT" \
  --set gateway.writeTimeout="$READ_WRITE_TIMEOUT" \
  --wait --timeout 10m
kubectl -n openfaas rollout status deploy/gateway --timeout=300s

echo "== faas-cli login"
node_ip="$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
export OPENFAAS_URL="${OPENFAAS_URL:-http://${node_ip}:${GATEWAY_NODEPORT}}"
kubectl -n openfaas get secret basic-auth -o jsonpath='{.data.basic-auth-password}' | base64 -d |
  faas-cli login --username admin --password-stdin --gateway "$OPENFAAS_URL"
echo "OpenFaaS gateway: $OPENFAAS_URL (export OPENFAAS_URL=$OPENFAAS_URL)"
echo "password: kubectl -n openfaas get secret basic-auth -o jsonpath='{.data.basic-auth-password}' | base64 -d"
