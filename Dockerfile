# The warden image: a release binary on a distroless base, running as a non-root user.
#
# Base images are pinned by digest, so a rebuild uses the bytes that were reviewed. To move to a
# newer base, pull the tag and take its digest, e.g.
#   podman pull docker.io/library/rust:1.95-bookworm
#   podman image inspect --format '{{.Digest}}' docker.io/library/rust:1.95-bookworm
# and update the two FROM lines together with the CHANGELOG.

# Build stage: the release binary.
FROM docker.io/library/rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin warden

# Runtime stage: glibc and CA certificates only (the system roots verify jwks_url and https
# upstreams without their own CA), no shell, no curl, running as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="warden" \
      org.opencontainers.image.description="A zero-trust authenticating reverse proxy for AI agents" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/warden /usr/local/bin/warden
COPY config/container.yaml /etc/warden/warden.yaml
USER nonroot:nonroot
WORKDIR /var/lib/warden
EXPOSE 8443 9901
# distroless has no curl: warden probes its own admin listener (/readyz needs no token).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/warden", "healthcheck", "--config", "/etc/warden/warden.yaml"]
ENTRYPOINT ["/usr/local/bin/warden"]
CMD ["serve", "--config", "/etc/warden/warden.yaml"]
