#!/usr/bin/env bash
# build-images.sh [FUNCTION...] — stage each function's build context under build/<function>/ (the
# same layout `faas-cli build` makes for stack.yml's `lang: cloudpose`: the template's files at the top,
# the function's handler and configuration.copy folders in function/) and build
# cloudpose/<function>:$IMAGE_TAG from the one template Dockerfile, with the build args stack.yml gives.
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
py=${PYTHON:-.venv/bin/python}
if (($#)); then functions=("$@"); else mapfile -t functions < <("$py" -c 'from cloudpose.deployment import FUNCTION_NAMES; print(*FUNCTION_NAMES, sep="\n")'); fi

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
# context exactly as faas-cli does (deployment.BUILD_CONTEXT). Serving files only: weights, darknet
# sources and Ultralytics' settings are build-time inputs (template/cloudpose/.dockerignore).
rm -rf wheels models
link_or_copy "$wheels" wheels
link_or_copy "$models" models
find models \( -name '*.pt' -o -name '*.weights' \) -delete
rm -rf models/ultralytics-config
for fn in "${functions[@]}"; do
  [ -f "functions/$fn/handler.py" ] || { echo "no functions/$fn/handler.py" >&2; exit 1; }
  # The function's build args, as stack.yml states them (its one source: make manifests).
  args=$("$py" - "$fn" <<'PY'
import sys, yaml
fn = yaml.safe_load(open("stack.yml"))["functions"][sys.argv[1]]
print(" ".join(f"--build-arg={k}={v}" for k, v in (fn.get("build_args") or {}).items()))
PY
)
  ctx=build/$fn
  rm -rf "$ctx"
  mkdir -p "$ctx/function"
  cp -a template/cloudpose/. "$ctx/"
  cp -a "functions/$fn/." "$ctx/function/"
  cp -a shared requirements "$ctx/function/"
  link_or_copy wheels "$ctx/function/wheels"
  link_or_copy models "$ctx/function/models"
  find "$ctx" -name __pycache__ -type d -prune -exec rm -rf {} +
  echo "== $repository/$fn:$tag: context $(du -sh "$ctx" | cut -f1), base $base, $args"
  started=$SECONDS
  # shellcheck disable=SC2086  # $args is a list of --build-arg=K=V words
  docker build --build-arg BASE_IMAGE="$base" $args ${WITH_OPENVINO:+--build-arg WITH_OPENVINO=$WITH_OPENVINO} \
    -t "$repository/$fn:$tag" "$ctx" >"build/$fn.log" 2>&1 || {
    tail -40 "build/$fn.log" >&2
    exit 1
  }
  size=$(docker image inspect -f '{{.Size}}' "$repository/$fn:$tag")
  echo "== $repository/$fn:$tag built in $((SECONDS - started)) s: $((size / 1000000)) MB"
done
