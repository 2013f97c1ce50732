# syntax=docker/dockerfile:1
# Build: a static binary with the policies and data embedded.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/permatrix ./cmd/permatrix \
 && mkdir -p /out/var/lib/permatrix

# Run: distroless static, non-root (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/permatrix /usr/local/bin/permatrix
COPY --from=build --chown=65532:65532 /out/var/lib/permatrix /var/lib/permatrix
# The store's files are relative to the working directory: ./permatrix.db
# (--db) and, with an etcd store, ./permatrix-replica.db (--replica) land on
# the volume. No PERMATRIX_DB here: an image variable would count as a given
# --db and conflict with PERMATRIX_STORE=etcd://… (docs/kubernetes.md).
WORKDIR /var/lib/permatrix
VOLUME /var/lib/permatrix
EXPOSE 8181
USER 65532:65532
# Ready = the bundle loaded and the store open and taking writes. `permatrix
# health` reads the PERMATRIX_ADDR / PERMATRIX_DIAGNOSTIC_ADDR given to serve
# (a wildcard host is asked on loopback) and exits 0 when ready, 1 otherwise:
# no shell or curl in a distroless image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/permatrix", "health", "--timeout", "2s"]
ENTRYPOINT ["/usr/local/bin/permatrix"]
CMD ["serve"]
