#!/usr/bin/env bash
# Build the lbaas-operator image with docker or podman, with or without a reachable registry.
#
#   hack/image.sh build [TAG]  build the Dockerfile (default tag lbaas-operator:<version>); prints TAG
#   hack/image.sh base         make the Debian base image (cached) and print its name
#   hack/image.sh engine       print the engine for scripts and tests: line 1 the command, line 2
#                              the flags `build` and `run` need on this machine (shell words)
#
# Without a registry (BASE=debian, or BASE=auto when PYTHON_IMAGE cannot be pulled) the base is
# made from Debian's packages: mmdebstrap (bookworm, minbase + python3, python3-venv,
# ca-certificates), imported as localhost/lbaas-python-base:bookworm-<key>. The tarball is
# cached in $LBAAS_CACHE/image-base/, keyed by everything that shapes it (suite, packages,
# options, mmdebstrap's version); delete that folder to pick up newer Debian packages.
#
# Environment:
#   ENGINE           docker or podman (default: docker when its engine answers, else podman)
#   BASE             auto (default) | registry | debian
#   PYTHON_IMAGE     the base with a registry (default python:3.11-slim, as in the Dockerfile)
#   WITH_HAPROXY     true | false (default false): also install haproxy
#   CA_BUNDLE        CA bundle pip trusts while building, passed as the build secret
#                    ca-certificates (default: $PIP_CERT, $SSL_CERT_FILE or the system bundle)
#   LBAAS_CACHE      cache root (default ~/.cache/lbaas-operator)
#   PODMAN_FLAGS     podman's global flags (default --cgroup-manager=cgroupfs)
#   CONTAINER_FLAGS  flags for podman build and run (default: --runtime runc when runc exists,
#                    and ulimits that restricted hosts accept)
# Exit status 3: neither podman nor a docker with a running engine was found.
set -euo pipefail
shopt -s inherit_errexit  # failures inside $(...) stop the script too

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LBAAS_CACHE:-$HOME/.cache/lbaas-operator}
BASE=${BASE:-auto}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim}
WITH_HAPROXY=${WITH_HAPROXY:-false}
SUITE=bookworm
# shellcheck disable=SC2054  # --include takes a comma-separated list
MMDEBSTRAP_ARGS=(
  --variant=minbase --include=python3,python3-venv,ca-certificates
  # merged /usr without the usrmerge package, which would pull in all of perl (40 MB)
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
)

say() { echo "image: $*" >&2; }
die() { say "$2"; exit "$1"; }

# ---- the engine ---------------------------------------------------------------------------------
pick_engine() {
  if [[ -z ${ENGINE:-} ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1 \
       && ! docker --version 2>/dev/null | grep -qi podman; then
      ENGINE=docker
    elif command -v podman >/dev/null; then
      ENGINE=podman
    else
      die 3 "neither podman nor docker (with a running engine) found"
    fi
  fi
  case $ENGINE in
    podman)
      command -v podman >/dev/null || die 3 "podman not found"
      read -r -a ENGINE_CMD <<<"podman ${PODMAN_FLAGS---cgroup-manager=cgroupfs}"
      local default="--ulimit nofile=1024:4096 --ulimit nproc=1024:4096"
      command -v runc >/dev/null && default="--runtime runc $default"
      read -r -a CONTAINER <<<"${CONTAINER_FLAGS-$default}" ;;
    docker)
      docker info >/dev/null 2>&1 || die 3 "docker found, but its engine does not answer"
      ENGINE_CMD=(docker)
      read -r -a CONTAINER <<<"${CONTAINER_FLAGS-}"
      export DOCKER_BUILDKIT=1 ;;  # RUN --mount and build secrets
    *) die 2 "ENGINE must be docker or podman, not '$ENGINE'" ;;
  esac
}

engine() { "${ENGINE_CMD[@]}" "$@"; }
have_image() { engine image inspect "$1" >/dev/null 2>&1; }

# Docker's rule for short names (python:3.11-slim = docker.io/library/python:3.11-slim); podman
# may refuse unqualified names when no search registry is configured.
qualify() {
  local first=${1%%/*}
  if [[ $1 != */* ]]; then
    echo "docker.io/library/$1"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    echo "docker.io/$1"
  else
    echo "$1"
  fi
}

# ---- the Debian base ----------------------------------------------------------------------------
debian_base() {
  command -v mmdebstrap >/dev/null || die 1 "mmdebstrap not found (apt-get install mmdebstrap)"
  local key name dir tar
  key=$(printf '%s\n' "$SUITE" "${MMDEBSTRAP_ARGS[@]}" "$(mmdebstrap --version)" \
        | sha256sum | cut -c1-12)
  name=localhost/lbaas-python-base:$SUITE-$key
  if have_image "$name"; then
    echo "$name"
    return
  fi
  dir=$CACHE/image-base
  tar=$dir/$SUITE-$key.tar
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9  # one mmdebstrap at a time; a second caller then finds the tarball
  if [[ ! -s $tar ]]; then
    say "making the Debian base $SUITE-$key with mmdebstrap (about 30 s)"
    local start=$SECONDS
    mmdebstrap --quiet --format=tar "${MMDEBSTRAP_ARGS[@]}" "$SUITE" "$tar.part" </dev/null >&2
    mv "$tar.part" "$tar"
    find "$dir" -maxdepth 1 -name '*.tar' ! -name "$(basename "$tar")" -delete
    say "Debian base made in $((SECONDS - start)) s ($(du -m "$tar" | cut -f1) MB)"
  fi
  have_image "$name" || engine import "$tar" "$name" >/dev/null
  exec 9>&-
  echo "$name"
}

# ---- build --------------------------------------------------------------------------------------
pick_base() {
  case $BASE in
    registry) qualify "$PYTHON_IMAGE" ;;
    debian) debian_base ;;
    auto)
      local image
      image=$(qualify "$PYTHON_IMAGE")
      if have_image "$image" || timeout 300 "${ENGINE_CMD[@]}" pull "$image" >&2; then
        echo "$image"
      else
        say "cannot pull $image (no registry?): building on a base made from Debian packages"
        debian_base
      fi ;;
    *) die 2 "BASE must be auto, registry or debian, not '$BASE'" ;;
  esac
}

build() {
  local version tag base ca start
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -1)
  tag=${1:-lbaas-operator:$version}
  start=$SECONDS
  base=$(pick_base)
  ca=${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
  local args=(build --tag "$tag" --build-arg "PYTHON_IMAGE=$base"
              --build-arg "WITH_HAPROXY=$WITH_HAPROXY")
  [[ -s $ca ]] && args+=(--secret "id=ca-certificates,src=$ca")
  say "building $tag with $ENGINE on $base (WITH_HAPROXY=$WITH_HAPROXY)"
  engine "${args[@]}" "${CONTAINER[@]}" "$ROOT" >&2
  local bytes
  bytes=$(engine image inspect --format '{{.Size}}' "$tag")
  say "built $tag in $((SECONDS - start)) s: $((bytes / 1000000)) MB"
  echo "$tag"
}

pick_engine
case ${1:-} in
  build) shift; build "$@" ;;
  base) debian_base ;;
  engine) echo "${ENGINE_CMD[*]}"; echo "${CONTAINER[*]}" ;;
  *) die 2 "usage: hack/image.sh build [TAG] | base | engine" ;;
esac
