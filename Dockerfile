# Multi-stage build: compile in the Rust image, run in a slim Debian image as a non-root user.
FROM rust:1.95-slim-bookworm AS build
# jemalloc (the allocator, src/main.rs) is built from C sources with make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
COPY sim ./sim
RUN cargo build --release --locked --bin openchannel-gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=build /src/target/release/openchannel-gateway /usr/local/bin/openchannel-gateway
COPY config ./config
RUN mkdir -p /app/data && chown -R gateway /app/data
USER gateway
ENV GATEWAY__SERVER__LISTEN=0.0.0.0:8080 \
    GATEWAY__STORAGE__PATH=/app/data \
    GATEWAY_LOG_FORMAT=json
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["openchannel-gateway"]
CMD ["serve"]
