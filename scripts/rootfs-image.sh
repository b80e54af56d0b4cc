#!/usr/bin/env bash
# rootfs-image.sh TAG [PACKAGE...] — a Debian bookworm image made on this host, for machines that
# cannot pull from a registry: debootstrap --variant=minbase once, apt-get install PACKAGEs into a
# copy of it (in a chroot, with the host's network), strip docs and caches, `docker import` as TAG.
#
# Both the minbase tree and every finished root filesystem are cached as tarballs under
# $CACHE/rootfs, so a rerun (or a fresh Docker engine) only re-imports: seconds, not minutes.
# MIRROR overrides the Debian mirror (default: the host's own, from /etc/apt/sources.list*).
# FORCE=1 rebuilds even when TAG exists or a tarball is cached.
set -euo pipefail

tag=${1:?usage: rootfs-image.sh TAG [PACKAGE...]}
shift
packages=("$@")
suite=bookworm
cache=${CACHE:-$HOME/.cache/cloudpose}/rootfs
name=$(tr -c 'a-zA-Z0-9.\n-' '_' <<<"$tag")
tarball=$cache/$name.tar
minbase=$cache/$suite-minbase.tar
sudo=$([ "$(id -u)" = 0 ] || echo sudo)

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag: present"
  exit 0
fi

import() {  # the image config docker import cannot take from a tarball
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite + ${packages[*]:-nothing}" \
    "$tarball" "$tag" >/dev/null
  echo "$tag: imported from $tarball ($(du -h "$tarball" | cut -f1))"
}

if [ "${FORCE:-0}" != 1 ] && [ -s "$tarball" ]; then
  import
  exit 0
fi

host_mirror() {  # the first Debian (non-security) archive the host's apt uses
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
  } | grep -E '/debian/?$' | head -1 || true
}
mirror=${MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
  echo "debootstrap is missing: apt-get install debootstrap" >&2
  exit 1
}
mkdir -p "$cache/debs"
work=$(mktemp -d "${TMPDIR:-/tmp}/cloudpose-rootfs.XXXXXX")
root=$work/root
cleanup() {
  $sudo umount "$root/proc" 2>/dev/null || true
  $sudo rm -rf "$work"
}
trap cleanup EXIT

if [ "${FORCE:-0}" = 1 ] || [ ! -s "$minbase" ]; then
  echo "debootstrap --variant=minbase $suite from $mirror (a few minutes, once)"
  $sudo /usr/sbin/debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -30 "$work/debootstrap.log" >&2
    exit 1
  }
  $sudo tar -C "$root" --numeric-owner -cf "$minbase.tmp" . && mv "$minbase.tmp" "$minbase"
  $sudo rm -rf "$root"
fi

mkdir -p "$root"
$sudo tar -C "$root" --numeric-owner -xf "$minbase"
# Updates and security fixes too; no docs, manuals or translations in anything installed from here on.
$sudo tee "$root/etc/apt/sources.list" >/dev/null <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
$sudo tee "$root/etc/dpkg/dpkg.cfg.d/01-cloudpose-nodoc" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
$sudo tee "$root/etc/apt/apt.conf.d/01-cloudpose" >/dev/null <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
EOF
printf '#!/bin/sh\nexit 101\n' | $sudo tee "$root/usr/sbin/policy-rc.d" >/dev/null  # never start a daemon here
$sudo chmod 755 "$root/usr/sbin/policy-rc.d"
$sudo cp /etc/resolv.conf "$root/etc/resolv.conf"
$sudo mount -t proc proc "$root/proc"
in_root() {  # quiet unless it fails
  $sudo env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive chroot "$root" "$@" >>"$work/apt.log" 2>&1 || {
    tail -30 "$work/apt.log" >&2
    exit 1
  }
}
in_root apt-get update
in_root apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade
if ((${#packages[@]})); then
  echo "apt-get install ${packages[*]}"
  in_root apt-get -y install "${packages[@]}"
fi
in_root apt-get clean
$sudo umount "$root/proc"
$sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root/usr/sbin/policy-rc.d" "$root"/tmp/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/usr/share/lintian/*
$sudo find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
$sudo find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
: | $sudo tee "$root/etc/resolv.conf" >/dev/null  # Docker supplies its own
$sudo tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
import
