# syntax=docker/dockerfile:1
# Rendered by Honua from a schema-v1 build manifest; do not edit.

FROM node:22-slim

LABEL org.honua.manifest-hash="45cd6a3077074659e519d03e01b6e02cd5ca57e0fc254f064b34dfe1783469ed"
LABEL org.honua.language="node 22"
RUN npm install --global @angular/cli typescript
