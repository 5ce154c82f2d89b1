# syntax=docker/dockerfile:1
#
# The castsync release image: the static binary of the release archive and a CA bundle, and
# nothing else (no shell, no package manager, no libc). The release workflow
# (.github/workflows/release.yml) builds it for linux/amd64 and linux/arm64 from the archives
# it publishes, which scripts/docker-context unpacks into the build context:
#
#   scripts/build-release --target x86_64-unknown-linux-musl
#   scripts/docker-context dist docker-context
#   docker build -t castsync docker-context
#
# Use it like the binary: `docker run --rm -v "$PWD:/repo" -w /repo IMAGE validate`. Secrets
# never go into the image: pass CASTSYNC_AGE_KEY and CASTARI_API_KEY at run time.

# Only the CA bundle comes from here; it runs on the build machine's own platform.
FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS certs
# Not pinned: the Debian security archive replaces ca-certificates in place.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -m 0700 /out/var/lib/castsync

FROM scratch
ARG TARGETPLATFORM
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/castsync/castsync
LABEL org.opencontainers.image.title="castsync" \
      org.opencontainers.image.description="Keep Castari agents' secrets in git: age-encrypted manifests reconciled onto the platform" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/docs/install.md"
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The daemon's data directory (mount a volume on it), empty, owned by the user below.
COPY --from=certs --chown=10001:10001 /out/ /
COPY --chmod=0755 ${TARGETPLATFORM}/castsync /usr/local/bin/castsync
# HOME: the default places of castsync's own files (keys, state) are under it, so without a
# volume of its own a run still has somewhere to write.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/var/lib/castsync \
    PATH=/usr/local/bin
USER 10001:10001
WORKDIR /var/lib/castsync
# /healthz, /readyz, /metrics and the webhook POST /hooks/git of `castsync watch --listen`.
EXPOSE 9464
ENTRYPOINT ["castsync"]
CMD ["--help"]
