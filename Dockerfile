# trackedge: release build with the bundled librdkafka, slim non-root runtime.
#
#   docker build -t trackedge:0.1.0 .
#
# The image listens on all interfaces, so it will not start on the public
# development key: with no `signing.keys` it exits 64 naming that key. Give
# it a secret of your own (make one with `trackedge gen-key`) as a file and
# point a key entry at it:
#
#   docker run -p 8080:8080 -p 9464:9464 \
#     -v "$PWD/k1.secret:/run/secrets/trackedge-key:ro" \
#     -e TRACKEDGE_SIGNING__KEYS='[{id="k1",secret_file="/run/secrets/trackedge-key"}]' \
#     trackedge:0.1.0
#
# deploy/compose.yaml does this with a Docker secret; the Kubernetes
# manifests in deploy/kubernetes/ mount a Secret the same way.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
# The agent rules and the vendored pattern list are compiled in.
COPY agents ./agents
RUN cargo build --release --locked --bin trackedge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 trackedge \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/trackedge trackedge \
    && mkdir -p /var/lib/trackedge /etc/trackedge \
    && chown 10001:10001 /var/lib/trackedge
COPY --from=build /src/target/release/trackedge /usr/local/bin/trackedge
COPY config/trackedge.toml /etc/trackedge/trackedge.toml
# Events, spool and any relative paths live here.
WORKDIR /var/lib/trackedge
# Requests, probes and scrapes all come from outside the container, so both
# listeners bind every interface (the built-in defaults are loopback only).
# These variables beat the listen keys of any config file given to the
# image: to move a listener, set the variable (docker run -e ...), not the
# file.
# Keep the admin port off the public network all the same; beyond loopback,
# /stats answers only with server.admin_token (probes and /metrics stay open).
ENV TRACKEDGE_SERVER__LISTEN=0.0.0.0:8080 \
    TRACKEDGE_SERVER__ADMIN_LISTEN=0.0.0.0:9464
# User and group 10001, as the Kubernetes package's runAsUser/runAsGroup.
USER 10001:10001
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/trackedge"]
CMD ["serve", "--config", "/etc/trackedge/trackedge.toml", "--log-format", "json"]
