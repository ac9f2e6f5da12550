#!/usr/bin/env bash
# `make image`: build deploy/Dockerfile into $IMAGE (default ghcr.io/hearth-dev/hearth:<version>)
# with podman, or docker where that is what the machine has, and print the image's size.
#
# Where Docker Hub cannot be reached, the base is made of Debian's packages (mmdebstrap) as
# localhost/hearth-base:bookworm; the wheels are always fetched on the host into
# deploy/wheelhouse/, since a build container may not reach the package index (this machine's
# pip configuration and CA bundle are not inside it). BASE=... picks a base yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
# --if-stale: build only when the image's sources differ from this checkout's (`make test`).
if_stale=false
[ "${1:-}" = "--if-stale" ] && if_stale=true
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
IMAGE=${IMAGE:-ghcr.io/hearth-dev/hearth:$VERSION}
DEBIAN_BASE=localhost/hearth-base:bookworm

if command -v podman >/dev/null 2>&1; then
    engine=(podman)
    # crun fails on cgroups v1 "hybrid" hosts; runc works everywhere podman does.
    if command -v runc >/dev/null 2>&1; then engine+=(--runtime runc); fi
    limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    exists() { podman image exists "$1"; }
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=(docker)
    limits=()
    exists() { docker image inspect "$1" >/dev/null 2>&1; }
else
    echo "make image: neither podman nor a running docker engine found (apt-get install podman runc)" >&2
    exit 1
fi

debian_base() {
    # Debian's essential packages and python3, without apt, docs, manuals or translations
    # (~105 MB, ~20 s with a near mirror); /usr merged by mmdebstrap's hook rather than the
    # usrmerge package, which brings 47 MB of Perl.
    local tar
    tar=$(mktemp --suffix=.tar)
    mmdebstrap --quiet --variant=essential --include=python3,python3-venv,ca-certificates \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        bookworm "$tar"
    "${engine[@]}" import --quiet "$tar" "$DEBIAN_BASE" >/dev/null
    rm -f "$tar"
}

# The sources the image is built from, as a label the simulated kubelet checks before it runs it.
digest=$("$PYTHON" -m hearth_sim.image)
if $if_stale && exists "$IMAGE" &&
    [ "$("${engine[@]}" image inspect --format '{{index .Config.Labels "dev.hearth.source-digest"}}' "$IMAGE")" = "$digest" ]; then
    echo "make image: $IMAGE is built from these sources"
    exit 0
fi

if [ -z "${BASE:-}" ]; then
    if exists python:3.11-slim || "${engine[@]}" pull --quiet docker.io/library/python:3.11-slim >/dev/null 2>&1; then
        BASE=python:3.11-slim
    else
        BASE=$DEBIAN_BASE
        if ! exists "$BASE"; then
            command -v mmdebstrap >/dev/null 2>&1 || {
                echo "make image: no Docker Hub here, and no mmdebstrap to build a base (apt-get install mmdebstrap)" >&2
                exit 1
            }
            echo "make image: no Docker Hub; building $BASE from Debian's packages"
            debian_base
        fi
    fi
fi

# Hearth's wheel, and every dependency's for CPython 3.11 on this architecture (the bases' Python).
arch=$(uname -m)
rm -f deploy/wheelhouse/*.whl
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir deploy/wheelhouse .
"$PYTHON" -m pip download --quiet --dest deploy/wheelhouse --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
    --platform "linux_$arch" deploy/wheelhouse/hearth-"$VERSION"-*.whl \
    'async-timeout>=4.0.3'
# ^ pip evaluates markers against the host's Python, not --python-version: redis needs
#   async-timeout on Debian bookworm's Python 3.11.2 (`python_full_version < "3.11.3"`).

previous=$("${engine[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
"${engine[@]}" build --quiet "${limits[@]}" --build-arg "BASE=$BASE" --build-arg "VERSION=$VERSION" \
    --label "dev.hearth.source-digest=$digest" --file deploy/Dockerfile --tag "$IMAGE" . >/dev/null
# What this build left behind: its build stage, and the image it replaced (untagged now).
"${engine[@]}" image prune --force --filter label=dev.hearth.stage=build >/dev/null 2>&1 || true
if [ -n "$previous" ] && [ "$previous" != "$("${engine[@]}" image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    "${engine[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
size=$("${engine[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "make image: built $IMAGE on $BASE, $((size / 1000000)) MB"
