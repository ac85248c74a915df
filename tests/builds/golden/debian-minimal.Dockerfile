# syntax=docker/dockerfile:1
# Rendered by Honua from a schema-v1 build manifest; do not edit.

FROM debian:bookworm-slim

LABEL org.honua.manifest-hash="fb6bd1e650d1676b673c93ffc6ad93286b4b228e036a1a17e1c69f512128c3a1"
