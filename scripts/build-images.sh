#!/usr/bin/env bash
# build-images.sh [FUNCTION...] — stage each function's build context under build/<function>/ (the
# same layout `faas-cli build` makes for `lang: dockerfile`) and build cloudpose/<function>:$IMAGE_TAG.
#
# Needs the host wheelhouse ($WHEELS, `make wheels`) and the prepared models ($POSE_MODEL_DIR,
# `make model`); `make images` makes both first. BASE_IMAGE defaults to the official
# python:3.11-slim-bookworm when it is present locally, else to cloudpose/base:bookworm, made here
# by scripts/rootfs-image.sh (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${CACHE:-$HOME/.cache/cloudpose}
wheels=${WHEELS:-$cache/wheels/serve}
models=${POSE_MODEL_DIR:-$cache/models}
tag=${IMAGE_TAG:-latest}
repository=${IMAGE_REPOSITORY:-cloudpose}
if (($#)); then functions=("$@"); else functions=(pose-json pose-annotate); fi

for need in "$wheels/.complete" "$models"; do
  [ -e "$need" ] || { echo "missing $need: run make wheels model (or make images)" >&2; exit 1; }
done
base=${BASE_IMAGE:-}
if [ -z "$base" ]; then
  if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1; then
    base=python:3.11-slim-bookworm
  else
    base=cloudpose/base:bookworm
  fi
fi
if [ "$base" = cloudpose/base:bookworm ]; then
  scripts/rootfs-image.sh "$base" python3 python3-venv
fi

link_or_copy() {  # hard links cost no space; copy across file systems
  cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }
}

# Stage wheels/ and models/ at the repository top (hard links, git-ignored), then assemble each
# context exactly as faas-cli does: the function folder's files plus the copied folders
# (deployment.BUILD_CONTEXT). Serving files only: the .pt weights and Ultralytics' settings are
# build-time inputs.
rm -rf wheels models
link_or_copy "$wheels" wheels
link_or_copy "$models" models
find models -name '*.pt' -delete
rm -rf models/ultralytics-config
for fn in "${functions[@]}"; do
  [ -f "functions/$fn/Dockerfile" ] || { echo "no functions/$fn/Dockerfile" >&2; exit 1; }
  ctx=build/$fn
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "functions/$fn/." "$ctx/"
  cp -a shared requirements "$ctx/"
  link_or_copy wheels "$ctx/wheels"
  link_or_copy models "$ctx/models"
  find "$ctx" -name __pycache__ -type d -prune -exec rm -rf {} +
  echo "== $repository/$fn:$tag: context $(du -sh "$ctx" | cut -f1), base $base"
  started=$SECONDS
  docker build --build-arg BASE_IMAGE="$base" --build-arg WITH_OPENVINO="${WITH_OPENVINO:-1}" \
    -t "$repository/$fn:$tag" "$ctx" >"build/$fn.log" 2>&1 || {
    tail -40 "build/$fn.log" >&2
    exit 1
  }
  size=$(docker image inspect -f '{{.Size}}' "$repository/$fn:$tag")
  echo "== $repository/$fn:$tag built in $((SECONDS - started)) s: $((size / 1000000)) MB"
done
