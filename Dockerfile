# One image for every Orket process: web (daphne, the default command), worker and beat
# (`celery -A orket_site worker|beat`, given in compose.yaml) and one-off management commands.
#
#   docker build -t orket .
#   docker build -t orket --build-arg ORKET_EXTRA_APT="docker.io" .   # a docker CLI in the worker, for sandboxes
#
# See docs/deploy.md.
FROM python:3.11-slim

ARG ORKET_EXTRA_APT=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=orket_site.settings \
    ORKET_DATA_DIR=/data \
    ORKET_STATIC_ROOT=/app/staticfiles

# git: the agents' project workspaces are git repositories. bubblewrap: the local-process
# isolation backend for verification runs (see docs/verification.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap ca-certificates ${ORKET_EXTRA_APT} \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 orket \
    && useradd --system --uid 10001 --gid orket --home-dir /app --shell /usr/sbin/nologin orket

WORKDIR /app

# Dependencies first, from pyproject.toml, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY manage.py ./
COPY orket_site ./orket_site
COPY boards ./boards
COPY agents ./agents
COPY sandboxes ./sandboxes
COPY templates ./templates
COPY static ./static
RUN pip install --no-deps .

# Static files are collected at build time with the production storage (hashed names and a
# manifest), into ORKET_STATIC_ROOT, outside the data volume. The secret is a throwaway: nothing
# signed at build time is kept.
RUN mkdir -p /data "$ORKET_STATIC_ROOT" \
    && ORKET_ENV=production SECRET_KEY=collectstatic-only-not-a-secret ALLOWED_HOSTS=localhost \
       python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R orket:orket /data

USER orket:orket
VOLUME ["/data"]
EXPOSE 8000

# Behind a proxy that overwrites X-Forwarded-For, add --proxy-headers (compose.yaml does).
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--websocket_connect_timeout", "30", "orket_site.asgi:application"]
