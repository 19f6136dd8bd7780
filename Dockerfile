# syntax=docker/dockerfile:1
# lbaas-operator image: `docker build -t lbaas-operator:0.1.0 .`
#   --build-arg WITH_HAPROXY=true   also installs haproxy (for a sidecar or agent that runs it)
# Runs as UID/GID 65532 and writes nothing outside /tmp, so it fits the chart's pod: non-root,
# read-only root filesystem, /tmp an emptyDir. tests/unit/test_dockerfile.py checks this file.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: wheels of the operator and of all its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README* ./
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels .

# ---- final: the installed wheels, no build tools, non-root -------------------------------------
FROM ${PYTHON_IMAGE}
ARG WITH_HAPROXY=false
LABEL org.opencontainers.image.title="lbaas-operator" \
      org.opencontainers.image.description="Load balancers as Kubernetes resources, on any vendor's device" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN if [[ "$WITH_HAPROXY" == "true" ]]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends haproxy \
      && rm -rf /var/lib/apt/lists/*; \
    elif [[ "$WITH_HAPROXY" != "false" ]]; then \
      echo "WITH_HAPROXY must be true or false, not '$WITH_HAPROXY'" >&2; exit 1; \
    fi

# The wheels come in through a bind mount: no layer keeps them. pip compiles the .pyc files now,
# so the read-only root filesystem never needs them written at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/lbaas_operator-*.whl \
    && groupadd --gid 65532 lbaas \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
         --shell /usr/sbin/nologin lbaas

USER 65532:65532
WORKDIR /tmp
# Prometheus metrics (LBAAS_METRICS_PORT) and kopf's liveness endpoint /healthz (LBAAS_HEALTH_PORT).
EXPOSE 8000 8080
ENTRYPOINT ["lbaas-operator"]
CMD ["run"]
