#!/usr/bin/env bash
# Make this VM the control plane (after 00-common.sh): kubeadm init, a kubeconfig for the calling user,
# the Flannel CNI, and the `kubeadm join` command for the workers. Safe to rerun.
#
#   sudo ./10-controller.sh                       # advertise the default route's address
#   sudo ADVERTISE_ADDRESS=10.0.0.10 ./10-controller.sh
#
# CNI: Flannel (VXLAN). Why: the experiments need plain pod-to-pod connectivity and nothing else: no
# NetworkPolicy, no BGP, no encryption. Flannel is one small DaemonSet with one UDP port to open (8472,
# easy to allow in a cloud security list, where Calico's BGP (179/tcp) or IP-in-IP (protocol 4) often is
# not), and it costs each node less CPU and memory than Calico's agents, which matters next to 0.5-CPU pods.
set -euo pipefail

POD_CIDR="${POD_CIDR:-10.244.0.0/16}"       # Flannel's default network (kube-flannel.yml)
FLANNEL_VERSION="${FLANNEL_VERSION:-v0.28.4}" # pinned release of kube-flannel.yml
ADVERTISE_ADDRESS="${ADVERTISE_ADDRESS:-}"    # empty: kubeadm picks the default route's address
ALLOW_WORKLOADS="${ALLOW_WORKLOADS:-0}"       # 1: let pods run on the controller too (single-VM tests)

if [[ $EUID -ne 0 ]]; then
  echo "run as root: sudo $0" >&2
  exit 1
fi

if [[ ! -f /etc/kubernetes/admin.conf ]]; then
  args=(--pod-network-cidr "$POD_CIDR")
  if [[ -n $ADVERTISE_ADDRESS ]]; then
    args+=(--apiserver-advertise-address "$ADVERTISE_ADDRESS")
  fi
  kubeadm init "${args[@]}"
else
  echo "== kubeadm init already done"
fi
export KUBECONFIG=/etc/kubernetes/admin.conf

# kubectl for the user who ran sudo (and root)
user="${SUDO_USER:-root}"
home="$(getent passwd "$user" | cut -d: -f6)"
group="$(id -gn "$user")"
install -d -m 0700 -o "$user" -g "$group" "$home/.kube"
install -m 0600 -o "$user" -g "$group" /etc/kubernetes/admin.conf "$home/.kube/config"

echo "== Flannel $FLANNEL_VERSION"
kubectl apply -f "https://github.com/flannel-io/flannel/releases/download/${FLANNEL_VERSION}/kube-flannel.yml"
kubectl -n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=300s
kubectl wait --for=condition=Ready "node/$(hostname)" --timeout=300s || kubectl wait --for=condition=Ready node --all --timeout=300s

# The controller keeps kubeadm's NoSchedule taint by default: function pods then run only on the workers,
# whose CPUs are what the experiments measure.
if [[ $ALLOW_WORKLOADS == 1 ]]; then
  kubectl taint nodes --all node-role.kubernetes.io/control-plane:NoSchedule- 2>/dev/null || true
fi

echo
echo "== on each worker, after 00-common.sh, run:"
echo "sudo ./20-worker.sh $(kubeadm token create --print-join-command)"
