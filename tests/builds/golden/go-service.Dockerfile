# syntax=docker/dockerfile:1
# Rendered by Honua from a schema-v1 build manifest; do not edit.

FROM golang:1.23-bookworm

LABEL org.honua.manifest-hash="b285d534ca4f30751ecb2b59894da662527de1568bd2476cf486e240494cdf05"
LABEL org.honua.language="go 1.23"
ENV CGO_ENABLED="0"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git && rm -rf /var/lib/apt/lists/*
EXPOSE 9090
