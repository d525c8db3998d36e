# trackedge: release build with the bundled librdkafka, slim non-root runtime.
#   docker build -t trackedge .
#   docker run -p 8080:8080 -p 9464:9464 trackedge
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin trackedge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/trackedge trackedge \
    && mkdir -p /var/lib/trackedge /etc/trackedge \
    && chown trackedge /var/lib/trackedge
COPY --from=build /src/target/release/trackedge /usr/local/bin/trackedge
COPY config/trackedge.toml /etc/trackedge/trackedge.toml
# Events, spool and any relative paths live here.
WORKDIR /var/lib/trackedge
# Probes and scrapes come from outside the container.
ENV TRACKEDGE_SERVER__ADMIN_LISTEN=0.0.0.0:9464
USER 10001
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/trackedge"]
CMD ["serve", "--config", "/etc/trackedge/trackedge.toml", "--log-format", "json"]
