# syntax=docker/dockerfile:1
# smsgate container image: build with the Rust toolchain, run on a slim Debian
# with only the shared libraries the binary links (libssl3) and CA roots.
#
#   docker build -t smsgate .
#   docker run --rm smsgate check < events.ndjson

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
# librdkafka is compiled from the sources vendored in rdkafka-sys with its own
# configure script (python3) and make; no cmake. OpenSSL and zlib are linked
# from the system, found with pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libssl-dev zlib1g-dev pkg-config python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and compiled dependencies across builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin smsgate \
 && install -m 0755 target/release/smsgate /usr/local/bin/smsgate

# ---- run --------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 smsgate \
 && useradd --system --uid 10001 --gid smsgate --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin smsgate
COPY --from=builder /usr/local/bin/smsgate /usr/local/bin/smsgate
# The example configuration and sender registry; mount your own over them
# (docker-compose.yml and deploy/k8s/ do).
COPY config/default.toml /etc/smsgate/config.toml
COPY config/senders.example.toml /etc/smsgate/senders.toml
# Container defaults: listen for Prometheus on every interface, JSON logs,
# the registry at its container path. Override any key with SMSGATE__*.
ENV SMSGATE__METRICS__LISTEN=0.0.0.0:9898 \
    SMSGATE__LOG__FORMAT=json \
    SMSGATE__POLICY__SENDERS=/etc/smsgate/senders.toml
WORKDIR /etc/smsgate
USER 10001:10001
EXPOSE 9898
# `smsgate healthcheck` GETs /healthz on metrics.listen: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["smsgate", "healthcheck", "--config", "/etc/smsgate/config.toml"]
# SIGTERM drains in-flight records (pipeline.drain_timeout_secs, default 20 s);
# give `docker stop` longer than that (`docker stop -t 30`, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["smsgate"]
CMD ["run", "--config", "/etc/smsgate/config.toml"]
