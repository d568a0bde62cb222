# syntax=docker/dockerfile:1
# seenby's image: a virtual environment built in one stage, copied alone into a slim runtime
# that runs as an unprivileged numeric user. The base is pinned by its exact tag; pin it by
# digest too (python:3.11.11-slim-bookworm@sha256:...) in your registry mirror.

# Build stage: seenby and its dependencies (all published as wheels) in /opt/seenby.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/seenby
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
RUN /opt/seenby/bin/pip install --upgrade pip==24.3.1 \
 && /opt/seenby/bin/pip install . \
 && /opt/seenby/bin/pip uninstall --yes pip setuptools

# Runtime stage: the virtual environment only; no compilers, no package installers.
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="seenby" \
      org.opencontainers.image.description="Append-only, verifiable ledger of accesses to customers' camera clips" \
      org.opencontainers.image.version="0.1.0"
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 seenby \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin seenby
# Owned by root and read-only to the service: it cannot change its own code.
COPY --from=build /opt/seenby /opt/seenby
ENV PATH=/opt/seenby/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEENBY_DATA_DIR=/tmp/seenby
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["seenby"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
