# syntax=docker/dockerfile:1
#
# The idp container image: a static binary (no cgo: SQLite is modernc.org's
# pure-Go build) on distroless's static image, run as an unprivileged user.
# cmd/idp/deploy_test.go parses this file and builds the binary with the
# flags of the RUN line below, so the two cannot drift apart.
#
#   docker build -t idp .
#   docker run --rm -p 8080:8080 idp          # the embedded default, in /data
#
# The build context has no .git (.dockerignore), so the binary carries no
# VCS revision: `idp version` says "unknown". Tag images by revision instead
# (docker build -t idp:$(git rev-parse --short HEAD) .).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/idp ./cmd/idp
# The data directory of the embedded default, owned by the runtime user.
RUN mkdir -p /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/idp /idp
COPY --from=build --chown=65532:65532 /out/data /data
# A container is reached from outside it: the public port and the
# operations listener (metrics, health, and the profiler if switched on)
# listen on every interface, where the embedded default would take loopback.
ENV IDP_DATA_DIR=/data IDP_HTTP_ADDR=:8080 IDP_OPS_ADDR=:9090
USER 65532:65532
EXPOSE 8080 9090
# The image has no shell and no curl: the binary probes its own /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/idp", "healthcheck"]
ENTRYPOINT ["/idp"]
CMD ["serve"]
