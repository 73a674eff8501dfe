# Stand-in for golang:1.26-bookworm where it cannot be pulled (scripts/docker.sh):
# Debian bookworm with gcc for cgo (librdkafka) and this machine's own Go
# toolchain, laid out as the official image does (GOPATH=/go, Go in /usr/local/go).
# It trusts this machine's CA bundle, which the Go module proxy here needs.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY go /usr/local/go
ENV GOPATH=/go \
    GOTOOLCHAIN=local \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/bin /go/src && go version
WORKDIR /go
