# The jetti-relay image. Every service of docker-compose.yml except Redis, Prometheus and Grafana
# runs it with its own command (worker, pump, metrics, Flower, the sandbox).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# README.md is the package's long description (pyproject.toml `readme`).
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY ops ./ops
# The sandbox, the HTTP intake, the console and Flower are services of docker-compose.yml: their
# extras are in the image (tests/deploy/test_compose.py checks each service's extra is
# installed), with the OTLP exporter for JETTI_RELAY_OTLP_ENDPOINT.
RUN pip install ".[sandbox,intake,monitoring,console,tracing]" \
    && useradd --system --uid 10001 --home-dir /app relay

# Celery refuses to run as root without C_FORCE_ROOT; nothing here needs root.
USER relay
CMD ["jetti-relay", "--help"]
