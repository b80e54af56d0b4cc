#!/usr/bin/env bash
# Join this VM to the cluster as a worker (after 00-common.sh), with the command 10-controller.sh printed:
#
#   sudo ./20-worker.sh kubeadm join 10.0.0.10:6443 --token abc.def --discovery-token-ca-cert-hash sha256:...
#
# Safe to rerun: a node that has joined already is left as it is.
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
  echo "run as root: sudo $0 kubeadm join ..." >&2
  exit 1
fi
if [[ -f /etc/kubernetes/kubelet.conf ]]; then
  echo "this node has joined a cluster already (/etc/kubernetes/kubelet.conf); to redo: kubeadm reset -f"
  exit 0
fi
if [[ $# -lt 3 || $1 != kubeadm || $2 != join ]]; then
  echo "usage: sudo $0 kubeadm join <controller>:6443 --token ... --discovery-token-ca-cert-hash sha256:..." >&2
  echo "(print it on the controller: sudo kubeadm token create --print-join-command)" >&2
  exit 2
fi
shift 2
kubeadm join "$@"
echo "joined; check on the controller: kubectl get nodes -o wide"
