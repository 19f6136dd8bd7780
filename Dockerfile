# syntax=docker/dockerfile:1
# lbaas-operator image. Build it with `make image` (docker or podman, with or without a
# registry: see the README and hack/image.sh), or by hand with BuildKit:
#   docker build -t lbaas-operator:0.1.0 .
#   --build-arg WITH_HAPROXY=true      also installs haproxy (the reference driver runs it)
#   --build-arg PYTHON_IMAGE=<image>   another base: a Debian with python3, python3-venv and
#                                      ca-certificates, e.g. `hack/image.sh base` (no registry)
#   --secret id=ca-certificates,src=<bundle>   the CAs pip must trust behind a TLS proxy
# Runs as UID/GID 65532 and writes nothing outside /tmp, so it fits the chart's pod: non-root,
# read-only root filesystem, /tmp an emptyDir. tests/unit/test_dockerfile.py checks this file,
# tests/image/ builds and runs it.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- deps: a venv with the dependencies alone -------------------------------------------------
# Its own layer in the image, rebuilt only when pyproject.toml changes: a new operator version
# ships as a layer of a few hundred kB. A venv (not the system site-packages) works the same on
# python:3.11-slim and on Debian's python3, where pip may not touch the system Python (PEP 668).
# pip lives in a venv of its own (/opt/pip, never in the image) and installs with --python.
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1
# PYTHONSAFEPATH: the folder operator/ in /src must never shadow the stdlib module `operator`.
WORKDIR /src
COPY pyproject.toml ./
# pip trusts the system CA bundle, replaced during the RUN by the optional build secret
# `ca-certificates` (e.g. with a TLS-intercepting proxy's CA): it never lands in a layer.
# kubernetes >= 35 also ships kubernetes.aio, an asyncio copy of the whole client (68 MB with
# its .pyc); lbaas uses the synchronous client, kopf its own aiohttp: it goes.
RUN --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt,required=false \
    python3 -m venv /opt/pip \
    && python3 -m venv --without-pip /opt/lbaas \
    && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
       > /tmp/requirements.txt \
    && /opt/pip/bin/pip --python /opt/lbaas/bin/python install -r /tmp/requirements.txt \
    && rm -rf /opt/lbaas/lib/python3*/site-packages/kubernetes/aio

# ---- builder: the operator installed into that venv; its own files copied to /app -------------
FROM deps AS builder
COPY README* ./
COPY operator/ operator/
# pip compiles the .pyc files now, so the read-only root filesystem never needs them written.
RUN --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt,required=false \
    /opt/pip/bin/pip --python /opt/lbaas/bin/python install --no-deps . \
    && /opt/lbaas/bin/python -c 'import importlib.metadata as m; print("\n".join(str(f.locate().resolve()) for f in m.distribution("lbaas-operator").files))' \
       > /tmp/files \
    && mkdir /app && tar -cf /tmp/app.tar --files-from=/tmp/files && tar -xf /tmp/app.tar -C /app

# ---- final: the venv, no build tools, non-root -------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG WITH_HAPROXY=false
LABEL org.opencontainers.image.title="lbaas-operator" \
      org.opencontainers.image.description="Load balancers as Kubernetes resources, on any vendor's device" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/lbaas/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    TMPDIR=/tmp

# POSIX sh on purpose: podman's default (OCI) image format ignores SHELL.
# hadolint ignore=DL3008
RUN case "$WITH_HAPROXY" in \
      true) apt-get update \
            && apt-get install -y --no-install-recommends haproxy \
            && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log ;; \
      false) ;; \
      *) echo "WITH_HAPROXY must be true or false, not '$WITH_HAPROXY'" >&2; exit 1 ;; \
    esac \
    && groupadd --gid 65532 lbaas \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
         --shell /usr/sbin/nologin lbaas

COPY --from=deps /opt/lbaas /opt/lbaas
COPY --from=builder /app/ /

USER 65532:65532
WORKDIR /tmp
# Prometheus metrics (LBAAS_METRICS_PORT) and kopf's liveness endpoint /healthz (LBAAS_HEALTH_PORT).
EXPOSE 8000 8090
# Exec form: the console script is PID 1 and gets SIGTERM itself; any subcommand can be the CMD.
ENTRYPOINT ["lbaas-operator"]
CMD ["run"]
