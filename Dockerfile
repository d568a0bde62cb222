# syntax=docker/dockerfile:1
# Build stage: a wheel of seenby and its dependencies, with the compilers it may need.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/seenby
ENV PATH=/opt/seenby/bin:$PATH
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-cache-dir --upgrade pip==24.3.1 \
 && pip install --no-cache-dir .

# Runtime stage: the virtual environment only, run as an unprivileged numeric user.
FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 seenby \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/seenby --create-home seenby
COPY --from=build /opt/seenby /opt/seenby
ENV PATH=/opt/seenby/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEENBY_DATA_DIR=/var/lib/seenby
USER 10001:10001
WORKDIR /var/lib/seenby
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["seenby"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
