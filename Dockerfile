# syntax=docker/dockerfile:1
#
# One image with the three edgecache binaries: `edge`, `origin` and
# `edgecache`. It runs an edge by default; compose.yaml shows the others.
#
#   docker build -t edgecache .
#   docker run --rm -p 8080:8080 -p 9090:9090 edgecache \
#       edge --origin http://origin.example:8080 \
#            --listen 0.0.0.0:8080 --admin-listen 0.0.0.0:9090

# ---- build ---------------------------------------------------------------
FROM rust:1-bookworm AS builder
# aws-lc-sys (rustls' crypto provider) builds C code: it needs cmake and clang
# on some targets; gcc and make come with the rust image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p edge -p origin -p edgecache \
        --bin edge --bin origin --bin edgecache \
    && mkdir -p /out \
    && cp target/release/edge target/release/origin target/release/edgecache /out/

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim
# curl is only for the HEALTHCHECK; the binaries carry their own TLS roots
# (webpki-roots), and ca-certificates serves an origin with a public CA.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system edgecache \
    && useradd --system --gid edgecache --home-dir /var/lib/edgecache \
        --create-home --shell /usr/sbin/nologin edgecache
COPY --from=builder /out/edge /out/origin /out/edgecache /usr/local/bin/
USER edgecache
WORKDIR /var/lib/edgecache

# 8080: the edge's public HTTP listener (or the origin's, in an origin
#       container).
# 8443: the edge's HTTPS listener, when started with --tls-listen (or
#       `[tls] listen`) and a certificate.
# 9090: the edge's admin listener: /_edge/ready, /_edge/health,
#       /_edge/stats, /metrics (Prometheus), /_edge/purge. Keep it off the
#       internet.
# 7070: the origin's control listener (purge log stream and purge API).
EXPOSE 8080 8443 9090 7070

# The edge's readiness on its admin listener. Containers that run something
# else (the origin) override or disable this check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9090/_edge/ready || exit 1

# SIGTERM drains in-flight requests, then the edge exits 0; SIGHUP reloads
# its config file and certificates.
STOPSIGNAL SIGTERM
CMD ["edge", "--origin", "http://origin:8080", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9090"]
