# opsgate container image. Build with `./dev image` (which also smoke-tests it), or:
#   deploy/make-base opsgate-base:bookworm      # Debian bookworm + Python 3.11, no registry
#   deploy/fetch-wheels                         # the locked wheels, hash-checked
#   docker build --build-arg BASE=opsgate-base:bookworm -t opsgate .
# BASE may be any Debian/Ubuntu image with python3 (3.11+) and python3-venv, e.g.
# debian:bookworm-slim with those two packages added, where a registry is reachable.
ARG BASE=opsgate-base:bookworm

FROM ${BASE} AS deps
# Only the runtime pins of requirements.lock, each checked against its hash, installed
# from deploy/wheels/ (deploy/fetch-wheels fills it): the build needs no network.
# With an index reachable from the build, --build-arg PIP_NO_INDEX=0 lets pip fetch.
ARG PIP_NO_INDEX=1
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
COPY deploy/wheels /tmp/wheels
RUN python3 -m venv /opt/opsgate \
 && PIP_NO_INDEX=$PIP_NO_INDEX /opt/opsgate/bin/pip install --no-cache-dir \
      --disable-pip-version-check --require-hashes --only-binary=:all: \
      --find-links /tmp/wheels -r /tmp/requirements-runtime.lock \
 && /opt/opsgate/bin/pip uninstall -y -q pip setuptools \
 && find /opt/opsgate -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/opsgate \
      --shell /usr/sbin/nologin opsgate \
 && install -d -o opsgate -g opsgate -m 0750 /var/lib/opsgate
COPY --from=deps /opt/opsgate /opt/opsgate
WORKDIR /opt/opsgate/app
# Run from the source tree: templates/ is read next to the packages.
COPY bot ./bot
COPY handlers ./handlers
COPY keyboards ./keyboards
COPY storage ./storage
COPY sandbox ./sandbox
COPY templates ./templates
COPY deploy/healthcheck.py ./deploy/healthcheck.py
ENV PATH=/opt/opsgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_PATH=/var/lib/opsgate/opsgate.db
VOLUME /var/lib/opsgate
EXPOSE 8080
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# /healthz answers while the process is alive; a supervisor restarts it otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "deploy/healthcheck.py"]
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
