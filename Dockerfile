# syntax=docker/dockerfile:1
# The tidal operator image: `tidal run` on CPython 3.11 with CPU-only torch.
#
#   docker build --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> -t tidal:0.1.0 .
#
# TORCH_INDEX_URL is the pip --index-url PyTorch's install selector prints for Linux + pip + CPU.
# It is required: torch from the default index is the multi-GB CUDA build. docs/install.md has more.
#
# Two stages: `build` creates a virtualenv in /opt/tidal and installs tidal into it; the final stage
# copies only that virtualenv onto the same slim base, so no compiler, headers or pip cache ship.
# The base is pinned to an exact Python patch release and Debian release; pin a digest in
# production (PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/tidal
WORKDIR /src
COPY constraints.txt ./
# torch first, from the CPU index, so the project install below finds torch==2.13.0 satisfied
# (constraints.txt pins it) and never resolves a CUDA build.
RUN if [ -z "${TORCH_INDEX_URL}" ]; then \
      echo "TORCH_INDEX_URL is not set: pass --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index>" >&2; \
      exit 1; \
    fi \
 && /opt/tidal/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY tidal ./tidal
RUN /opt/tidal/bin/pip install --no-cache-dir --constraint constraints.txt . \
 && /opt/tidal/bin/tidal --help > /dev/null

FROM ${PYTHON_IMAGE}
# 65532: a fixed non-root uid/gid (the distroless "nonroot" convention) that the Helm chart's
# securityContext.runAsUser names; a numeric USER lets the kubelet verify runAsNonRoot.
RUN groupadd --system --gid 65532 tidal \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tidal
COPY --from=build /opt/tidal /opt/tidal
# The root filesystem is read-only in the cluster; every cache goes under /tmp (an emptyDir there).
ENV PATH=/opt/tidal/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor
USER 65532:65532
WORKDIR /tmp
# 8080: liveness (/healthz, `tidal run --health-port`); 9090: the operator's /metrics.
EXPOSE 8080 9090
# For `docker run`; Kubernetes ignores it and uses the chart's probes on the same endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tidal"]
CMD ["run"]
