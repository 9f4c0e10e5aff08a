# syntax=docker/dockerfile:1
# Multi-stage build: a static graymesh binary on distroless, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/graymesh ./cmd/graymesh

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/graymesh /usr/local/bin/graymesh
USER 65532:65532
# 18081 ext_proc (gRPC), 18000 xDS/ADS (gRPC), 18080 admin (HTTP)
EXPOSE 18081 18000 18080
ENTRYPOINT ["/usr/local/bin/graymesh"]
CMD ["serve", "--config", "/etc/graymesh/graymesh.yaml"]
