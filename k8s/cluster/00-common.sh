#!/usr/bin/env bash
# Prepare one Ubuntu/Debian VM, controller or worker, for kubeadm: swap off, kernel modules and sysctls,
# containerd with the systemd cgroup driver, kubeadm/kubelet/kubectl from pkgs.k8s.io pinned to one minor
# and held. Safe to rerun: every step checks or overwrites its own files.
#
#   sudo ./00-common.sh
#   sudo K8S_MINOR=1.34 INSECURE_REGISTRY=10.0.0.10:5000 ./00-common.sh
set -euo pipefail

K8S_MINOR="${K8S_MINOR:-1.34}" # = deployment.KUBERNETES_MINOR; pkgs.k8s.io has one repository per minor
# host:port of a plain-HTTP registry the nodes may pull from (docs/cluster.md, "Images"); empty = none
INSECURE_REGISTRY="${INSECURE_REGISTRY:-}"

if [[ $EUID -ne 0 ]]; then
  echo "run as root: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

echo "== swap off (the kubelet will not start with swap on)"
swapoff -a
sed -ri '/^[^#].*\sswap\s/s/^/#/' /etc/fstab

echo "== kernel modules and sysctls for pod networking"
printf 'overlay\nbr_netfilter\n' >/etc/modules-load.d/kubernetes.conf
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/99-kubernetes.conf <<'CONF'
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
CONF
sysctl --system >/dev/null

echo "== containerd (the distribution's package) with SystemdCgroup = true"
apt-get update -q
apt-get install -y -q containerd apt-transport-https ca-certificates curl gpg conntrack
mkdir -p /etc/containerd
# The kubelet uses the systemd cgroup driver (kubeadm's default); containerd must use the same one, or pods
# restart at random under load. Regenerate the default config once, then leave local edits alone.
if ! grep -q 'SystemdCgroup = true' /etc/containerd/config.toml 2>/dev/null; then
  containerd config default >/etc/containerd/config.toml
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
  grep -q 'SystemdCgroup = true' /etc/containerd/config.toml || {
    echo "could not set SystemdCgroup in /etc/containerd/config.toml" >&2
    exit 1
  }
fi
# Per-registry settings live in /etc/containerd/certs.d (containerd 2.x already points there; 1.7 does not).
sed -i -e "s#config_path = \"\"#config_path = \"/etc/containerd/certs.d\"#" \
  -e "s#config_path = ''#config_path = '/etc/containerd/certs.d'#" /etc/containerd/config.toml
if [[ -n $INSECURE_REGISTRY ]]; then
  mkdir -p "/etc/containerd/certs.d/$INSECURE_REGISTRY"
  cat >"/etc/containerd/certs.d/$INSECURE_REGISTRY/hosts.toml" <<CONF
server = "http://$INSECURE_REGISTRY"

[host."http://$INSECURE_REGISTRY"]
  capabilities = ["pull", "resolve"]
CONF
fi
systemctl enable containerd
systemctl restart containerd

echo "== kubeadm, kubelet, kubectl $K8S_MINOR from pkgs.k8s.io"
install -m 0755 -d /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/Release.key" |
  gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/ /" \
  >/etc/apt/sources.list.d/kubernetes.list
apt-get update -q
installed="$(dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true)"
if [[ $installed != "${K8S_MINOR}".* ]]; then # absent, or another minor: install this minor's newest patch
  apt-mark unhold kubelet kubeadm kubectl >/dev/null 2>&1 || true
  apt-get install -y -q kubelet kubeadm kubectl
fi
apt-mark hold kubelet kubeadm kubectl >/dev/null # no surprise upgrades between experiments
systemctl enable --now kubelet # crash-loops until kubeadm init/join writes its config: expected

echo "== firewall: open the cluster's ports if ufw is active (cloud security lists: see docs/cluster.md)"
if command -v ufw >/dev/null && ufw status | grep -q '^Status: active'; then
  for rule in 6443/tcp 2379:2380/tcp 10250/tcp 10257/tcp 10259/tcp 30000:32767/tcp 8472/udp; do
    ufw allow "$rule" >/dev/null
  done
fi

echo "ready: $(kubeadm version -o short), containerd $(containerd --version | awk '{print $3}')"
