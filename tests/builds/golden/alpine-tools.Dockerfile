# syntax=docker/dockerfile:1
# Rendered by Honua from a schema-v1 build manifest; do not edit.

FROM alpine:3.20

LABEL org.honua.manifest-hash="16c815bcf556398261ac3e0e9c8e3ce06524ad3a53674e1acbc404bb6f305cc0"
ENV TZ="UTC"
RUN apk add --no-cache curl jq
EXPOSE 80 443
