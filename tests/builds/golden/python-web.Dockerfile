# syntax=docker/dockerfile:1
# Rendered by Honua from a schema-v1 build manifest; do not edit.

FROM python:3.12-slim

LABEL org.honua.manifest-hash="c1d07881cc1c8238a30305870856cc0ba3825befda68b752f1ba3662916600e2"
LABEL org.honua.language="python 3.12"
ENV GREETING="say \"hi\" for \$5 \\o/"
ENV PORT="8000"
RUN pip install --no-cache-dir flask gunicorn 'psycopg[binary]'
EXPOSE 8000
