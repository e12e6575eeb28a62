# jupycell-gateway: the FastAPI gateway that starts one sandbox container per
# kernel. Build from the repo root (scripts/build-images.sh or docker compose):
#   docker build --build-arg BASE_IMAGE=... -t jupycell-gateway:latest .
#
# It runs as root inside the container because it talks to the Docker engine
# through the mounted /var/run/docker.sock (see docker-compose.yml).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv /opt/venv

# Optional extra CA for pip (see sandbox_image/Dockerfile); empty when unused.

# Dependencies before code, so editing gateway/ does not reinstall them.
# The glob makes the CA optional: a plain checkout (no build/) builds too.
COPY requirements.txt build/extra-ca.pe[m] /opt/jupycell/
RUN set -eu; \
    if [ -s /opt/jupycell/extra-ca.pem ]; then \
        cat /etc/ssl/certs/ca-certificates.crt /opt/jupycell/extra-ca.pem \
            > /opt/jupycell/build-ca.pem 2>/dev/null \
          || cp /opt/jupycell/extra-ca.pem /opt/jupycell/build-ca.pem; \
        export PIP_CERT=/opt/jupycell/build-ca.pem; \
    fi; \
    pip install -r /opt/jupycell/requirements.txt; \
    rm -f /opt/jupycell/build-ca.pem

WORKDIR /app
ENV PYTHONPATH=/app
COPY gateway/ /app/gateway/

EXPOSE 8000
# No uvicorn access log: the audit log already has one line per request (who, what, status, duration), batched off
# the event loop; the access log cost a formatted log record per request on the loop (docs/benchmarks.md).
CMD ["uvicorn", "--factory", "gateway.main:create_app", "--ws", "gateway.api.websocket_protocol:WebSocketProtocol", "--no-access-log", "--host", "0.0.0.0", "--port", "8000"]
