# syntax=docker/dockerfile:1
# The tidal operator image: `tidal run` on CPython 3.11, nothing else.
#
#   docker build -t tidal:0.1.0 .
#
# What goes in is exactly requirements/operator.lock: the operator's dependency closure, every
# package pinned by version and sha256 (pip --require-hashes), then tidal itself without
# dependencies. torch (training the forecaster prior, extra `train`) and matplotlib (simulation
# reports, extra `sim`) are not in it: `tidal run` imports neither (tests/charts/test_dockerfile.py).
# Regenerate the lock after changing [project] dependencies in pyproject.toml:
#   pip-compile --generate-hashes --strip-extras --no-emit-index-url \
#     --output-file requirements/operator.lock pyproject.toml
#
# Two stages: `build` creates a virtualenv in /opt/tidal and installs into it (no .pyc: the
# kubernetes client alone would add ~50 MB of bytecode; the read-only root filesystem could not
# cache it either); the final stage copies only that virtualenv, without pip, onto the same base.
# The base is pinned by digest (python:3.11.13-slim-bookworm, linux/amd64 and arm64 manifest list);
# bump tag and digest together (`docker buildx imagetools inspect python:<tag>` prints it).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/tidal
WORKDIR /src
COPY requirements/operator.lock ./
RUN /opt/tidal/bin/pip install --no-cache-dir --no-compile --require-hashes --no-deps -r operator.lock
COPY pyproject.toml README.md ./
COPY tidal ./tidal
# Tests shipped inside wheels are not needed at run time; pip and setuptools only install.
RUN /opt/tidal/bin/pip install --no-cache-dir --no-compile --no-deps . \
 && /opt/tidal/bin/tidal --help > /dev/null \
 && find /opt/tidal/lib -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
 && /opt/tidal/bin/python -m pip uninstall --yes pip setuptools

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
    XDG_CACHE_HOME=/tmp/.cache
USER 65532:65532
WORKDIR /tmp
# 8080: liveness (/healthz, `tidal run --health-port`); 9090: the operator's /metrics.
EXPOSE 8080 9090
# For `docker run`; Kubernetes ignores it and uses the chart's probes on the same endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tidal"]
CMD ["run"]
