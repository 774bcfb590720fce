# Usher in a container: built from source in a Rust image, run from a small Debian
# image as an unprivileged user, with the data directory (SQLite database, generated
# master key, mail outbox) as a volume. For production, point USHER_DATABASE_URL at
# PostgreSQL and give the master key as a secret (see compose.yaml and
# docs/CONFIGURATION.md).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p usher-cli --bin usher

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/usher --create-home usher
COPY --from=build /src/target/release/usher /usr/local/bin/usher
USER usher
WORKDIR /var/lib/usher
ENV USHER_DATA_DIR=/var/lib/usher \
    USHER_LISTEN=0.0.0.0:8080 \
    USHER_LOG_FORMAT=json
VOLUME ["/var/lib/usher"]
EXPOSE 8080
# Orchestrators should probe /health/live and /health/ready; the image has no HTTP
# client to do it itself.
ENTRYPOINT ["usher"]
CMD ["serve"]
