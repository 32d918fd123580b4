# Redis from Debian's package on the same registry-free base as opsgate
# (deploy/make-base). Redis holds only caches for opsgate, so nothing is persisted.
ARG BASE=opsgate-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
