"""Orket settings. Every value comes from the environment; see README.md for the table.

Two modes:
- embedded default (no DATABASE_URL / REDIS_URL): SQLite in WAL mode, in-process Celery broker and
  worker, in-memory channel layer and cache, everything in one daphne process;
- production topology (DATABASE_URL and REDIS_URL set): PostgreSQL, Redis for Celery, Channels and
  the cache, with daphne, celery worker and celery beat as separate processes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from orket_site.env import data_dir, dev_secret_key, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir(BASE_DIR)

ORKET_ENV = env_str("ORKET_ENV", "development").lower()
if ORKET_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"ORKET_ENV must be development or production, not {ORKET_ENV!r}")
PRODUCTION = ORKET_ENV == "production"

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when ORKET_ENV=production")
    SECRET_KEY = dev_secret_key(DATA_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when ORKET_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# WebSockets accept exactly the origins above; outside production also the page origin the socket's
# own Host header names (scheme from ws/wss, host and port exact), as `make run` is reached directly.
ORKET_SOCKET_ORIGIN_FROM_HOST = not PRODUCTION
# Open WebSockets re-check their session and project this often (seconds), besides at once when a
# logout, password or membership change is announced on the channel layer.
ORKET_SOCKET_RECHECK_SECONDS = env_int("ORKET_SOCKET_RECHECK_SECONDS", 30)
if ORKET_SOCKET_RECHECK_SECONDS < 1:
    raise ImproperlyConfigured("ORKET_SOCKET_RECHECK_SECONDS must be at least 1")
# Live log streams (sandboxes.log_streams): lines kept per stream, and the longest line stored whole.
ORKET_LOG_STREAM_MAX_LINES = env_int("ORKET_LOG_STREAM_MAX_LINES", 20_000)
ORKET_LOG_LINE_MAX_CHARS = env_int("ORKET_LOG_LINE_MAX_CHARS", 4_000)
if ORKET_LOG_STREAM_MAX_LINES < 100 or ORKET_LOG_LINE_MAX_CHARS < 200:
    raise ImproperlyConfigured("ORKET_LOG_STREAM_MAX_LINES must be at least 100, ORKET_LOG_LINE_MAX_CHARS at least 200")

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not (DATABASE_URL and REDIS_URL)

INSTALLED_APPS = [
    "daphne",
    "orket_site.apps.OrketAdminConfig",  # django.contrib.admin with the sign-in limited password change
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "channels",
    "orket_site",
    "boards",
    "sandboxes",
    "agents",
]

MIDDLEWARE = [
    "orket_site.instruments.RequestMetricsMiddleware",
    "orket_site.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "orket_site.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "orket_site.login_limits.SignInLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orket_site.middleware.LoginRequiredByDefaultMiddleware",
]

ROOT_URLCONF = "orket_site.urls"
ASGI_APPLICATION = "orket_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    # Persistent connections for long-lived threads (worker threads, WebSocket reads): opening a
    # PostgreSQL connection costs milliseconds of CPU that a WebSocket handshake cannot spare under
    # load. Request threads close theirs at the end (orket_site.db_connections). Health checks
    # find connections a PostgreSQL restart broke, and a down server is reported at once (503).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "orket.sqlite3",
            "OPTIONS": {
                # WAL lets readers and the one writer work at the same time; IMMEDIATE takes the
                # write lock at BEGIN so two writers queue instead of failing mid-transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "orket_site.layers.ThreadSafeInMemoryChannelLayer"}}

# Celery: Redis in the production topology, the in-process memory transport otherwise.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# The memory transport polls; a short interval keeps the embedded worker responsive.
CELERY_BROKER_TRANSPORT_OPTIONS = {} if REDIS_URL else {"polling_interval": 0.02}
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = env_str("ORKET_QUEUE", "orket")
CELERY_TASK_IGNORE_RESULT = True
ORKET_REAP_SECONDS = float(env_int("ORKET_REAP_SECONDS", 15))
# Most cards one run works at a time (the Run dialog's upper bound); 0: the embedded default (8) or
# the number of Celery workers that answer.
ORKET_MAX_PARALLEL = env_int("ORKET_MAX_PARALLEL", 0)
CELERY_BEAT_SCHEDULE = {
    # Turns whose worker stopped heartbeating go back to the queue: nothing shows as running
    # when no worker holds it.
    "reap-stale-turns": {"task": "agents.turns_reap_stale", "schedule": ORKET_REAP_SECONDS},
    # Gitea never retries a failed delivery: read open pull requests back and apply what was missed.
    "gitea-reconcile": {
        "task": "agents.gitea_reconcile_all",
        "schedule": float(env_int("ORKET_GITEA_RECONCILE_SECONDS", 300)),
    },
    # Sandboxes: health checks and logs of running ones; expiry and removal of containers no row accounts for.
    "sandboxes-check-health": {
        "task": "sandboxes.sandboxes_check_health",
        "schedule": float(env_int("ORKET_SANDBOX_HEALTH_SECONDS", 30)),
    },
    "sandboxes-cleanup": {
        "task": "sandboxes.sandboxes_cleanup",
        "schedule": float(env_int("ORKET_SANDBOX_CLEANUP_SECONDS", 300)),
    },
    # Verification runs whose worker stopped end as errors; lost queued ones are sent again.
    "verification-runs-recover": {"task": "sandboxes.verification_runs_recover", "schedule": 120.0},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in limits and API tokens (docs/operations.md, "Sign-in limits and API tokens").
# Every password goes through this backend, which refuses while the account or address is locked;
# a backend added later must come after it, so that its refusal stops the others too.
AUTHENTICATION_BACKENDS = ["orket_site.login_limits.SignInLimitedModelBackend"]
ORKET_TOKEN_TTL_HOURS = env_int("ORKET_TOKEN_TTL_HOURS", 720)
if ORKET_TOKEN_TTL_HOURS < 1:
    raise ImproperlyConfigured("ORKET_TOKEN_TTL_HOURS must be at least 1")
KNOX_TOKEN_MODEL = "orket_site.ApiToken"  # noqa: S105 - a model name, not a secret
# knox's own model is swapped out for that one; its migrations would still create its table, unused
# yet referencing users (which PostgreSQL then refuses to truncate alone).
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=ORKET_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",
    # Marks Orket's keys for secret scanners, and tells them from the retired 40-character DRF keys.
    "TOKEN_PREFIX": "orket_",
    "AUTO_REFRESH": False,
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Collected static files: in the data directory unless the image or host puts them elsewhere.
STATIC_ROOT = Path(env_str("ORKET_STATIC_ROOT") or DATA_DIR / "static")
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve static files from the finders when they were not collected (the embedded default).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

ORKET_ADMIN_URL = env_str("ORKET_ADMIN_URL", "admin/").strip("/") + "/"
ORKET_MAX_BODY_BYTES = env_int("ORKET_MAX_BODY_BYTES", 2 * 1024 * 1024)
# HTTP requests one web process runs at once; more wait on the event loop (orket_site.concurrency).
ORKET_WEB_CONCURRENCY = env_int("ORKET_WEB_CONCURRENCY", 4)
# Webhook deliveries (/hooks/) have slots of their own, so they never wait behind page requests.
ORKET_WEBHOOK_CONCURRENCY = env_int("ORKET_WEBHOOK_CONCURRENCY", 4)
DATA_UPLOAD_MAX_MEMORY_SIZE = ORKET_MAX_BODY_BYTES
# Hosts the server may connect to on a user's say-so (Gitea and model server base URLs): names,
# host:port, addresses and CIDR networks; loopback only by default (agents.outbound).
ORKET_OUTBOUND_HOSTS = env_list("ORKET_OUTBOUND_HOSTS", ["127.0.0.0/8", "::1", "localhost"])
# Folders on the server under which a project may use a local git repository as its source (os.pathsep-separated).
ORKET_LOCAL_REPO_ROOTS = env_str("ORKET_LOCAL_REPO_ROOTS", "")
FILE_UPLOAD_MAX_MEMORY_SIZE = ORKET_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orket_site.api.auth.TokenAuthentication",
        "orket_site.api.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "orket_site.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "orket_site.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["orket_site.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Orket API",
    "DESCRIPTION": "Projects, boards, agent runs, sandboxes and Gitea review loops.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Runs and turns share one set of statuses (queued, running, succeeded, failed, canceled).
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "agents.models.RunStatus"},
}

# JSON lines for production (and whenever ORKET_LOG_FORMAT=json); readable lines for `make run`.
ORKET_LOG_FORMAT = env_str("ORKET_LOG_FORMAT", "json" if PRODUCTION else "text").lower()
ORKET_LOG_LEVEL = env_str("ORKET_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "orket_site.logging.RequestContextFilter"},
        "quiet_housekeeping": {"()": "orket_site.logging.QuietHousekeepingFilter"},
    },
    "formatters": {
        "json": {"()": "orket_site.logging.JsonFormatter"},
        "text": {"()": "orket_site.logging.TextFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "text" if ORKET_LOG_FORMAT == "text" else "json",
            "filters": ["request_context", "quiet_housekeeping"],
        }
    },
    "root": {"handlers": ["stderr"], "level": ORKET_LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "twisted": {"level": "WARNING"},
        # Celery's start-up chatter (broker connected, beat starting) says nothing a person acts on.
        "celery.worker.consumer.connection": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}

# Security headers for every mode; production adds the HTTPS-only ones.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    DEBUG = env_bool("DEBUG", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("ORKET_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("ORKET_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Malformed input and page assets (docs/operations.md, "Security"): API answers replace lone
# surrogates that old rows may hold; every page carries a Content-Security-Policy that allows only
# this server's own scripts, styles, images and connections (WebSockets included), and the API docs
# load Swagger UI from the static files of drf-spectacular-sidecar instead of a CDN.
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
    "orket_site.api.renderers.SafeJSONRenderer",
    "rest_framework.renderers.BrowsableAPIRenderer",
]
INSTALLED_APPS += ["csp", "drf_spectacular_sidecar"]
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")
SPECTACULAR_SETTINGS.update(SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR", REDOC_DIST="SIDECAR")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}
