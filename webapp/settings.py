"""LabelGPT settings. Everything that differs between machines is read from the environment.

Embedded default (no services needed): SQLite under var/, Celery's filesystem transport under
var/, media under var/media. Production: set DATABASE_URL (postgres://...) and
CELERY_BROKER_URL (redis://...).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LABELGPT_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and os.environ.get("LABELGPT_REQUIRE_SECRET_KEY"):
        raise ImproperlyConfigured("SECRET_KEY must be set in production")
    # Development-only fallback; `manage.py check --deploy` flags it.
    SECRET_KEY = "django-insecure-labelgpt-development-key-change-me"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Request size limits: before anything that reads the body (CsrfViewMiddleware does).
    "labeling.middleware.RequestSizeLimitMiddleware",
    "labeling.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'labelgpt.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web + worker) share the file: wait for locks instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT for our connections: the pages' queries are short, and compiling them added about
    # 200 ms to the image grid of a 100,000-image project (measured in issue 12).
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    _pg_options["options"] = f"{_pg_options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"  # every page needs a login except those marked login_not_required
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "webapp.storage.ManifestStaticStorage"
        if not DEBUG and env_bool("LABELGPT_MANIFEST_STATIC", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Serve static files from the app folders too, so the app works without collectstatic (make run).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Uploads -----------------------------------------------------------------------------------
# Largest single image file accepted, and largest request body (a zip or many files).
LABELGPT_MAX_IMAGE_BYTES = env_int("LABELGPT_MAX_IMAGE_BYTES", 50 * 1024 * 1024)
LABELGPT_MAX_IMAGE_PIXELS = env_int("LABELGPT_MAX_IMAGE_PIXELS", 100_000_000)
LABELGPT_MAX_UPLOAD_BYTES = env_int("LABELGPT_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
LABELGPT_MAX_UPLOAD_FILES = env_int("LABELGPT_MAX_UPLOAD_FILES", 1000)
LABELGPT_ZIP_MAX_ENTRIES = env_int("LABELGPT_ZIP_MAX_ENTRIES", 10_000)
LABELGPT_ZIP_MAX_TOTAL_BYTES = env_int("LABELGPT_ZIP_MAX_TOTAL_BYTES", 4 * 1024 * 1024 * 1024)
LABELGPT_THUMBNAIL_SIZE = env_int("LABELGPT_THUMBNAIL_SIZE", 320)
DATA_UPLOAD_MAX_NUMBER_FILES = LABELGPT_MAX_UPLOAD_FILES
FILE_UPLOAD_PERMISSIONS = 0o644

# Request size (issue 11; labeling.middleware.RequestSizeLimitMiddleware) ------------------------
# The largest request body by route: 413 from the declared Content-Length before the body is
# read (a chunked body is counted and stopped at the limit). Image uploads (page and API) take
# LABELGPT_MAX_UPLOAD_BYTES (above), dataset imports (page and API) LABELGPT_MAX_IMPORT_BYTES,
# every other route (JSON bodies, forms) LABELGPT_MAX_REQUEST_BYTES.
LABELGPT_MAX_IMPORT_BYTES = env_int("LABELGPT_MAX_IMPORT_BYTES", LABELGPT_MAX_UPLOAD_BYTES)
LABELGPT_MAX_REQUEST_BYTES = env_int("LABELGPT_MAX_REQUEST_BYTES", 10 * 1024 * 1024)
# Django's own caps: a body read whole into memory (JSON, a form's fields), and the size past
# which an uploaded file (or a counted chunked body) spools to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = LABELGPT_MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Imports (issue 11: archives read lazily, imports run as background tasks) ------------------
# An archive entry an import reads may unpack to at most this many times its compressed size
# (1 MiB past it is forgiven, all entries together): a zip bomb under the total caps above is
# refused at its first such entry. The uploaded file waits under MEDIA_ROOT/imports/ for the
# task (queue "default") and is deleted once the import has ended.
LABELGPT_ZIP_MAX_RATIO = env_int("LABELGPT_ZIP_MAX_RATIO", 100)

# Models (pre-labeling) ------------------------------------------------------------------------
# "real": Grounding DINO / SAM weights named by each project; "tiny": tiny random models built
# on first use under LABELGPT_MODELS_DIR/tiny (tests, CI, offline demos).
LABELGPT_MODELS = os.environ.get("LABELGPT_MODELS", "real")
if LABELGPT_MODELS not in ("real", "tiny"):
    raise ImproperlyConfigured(f'LABELGPT_MODELS must be "real" or "tiny", got {LABELGPT_MODELS!r}')
LABELGPT_MODELS_DIR = Path(os.environ.get("LABELGPT_MODELS_DIR", VAR_DIR / "models"))
LABELGPT_DEVICE = os.environ.get("LABELGPT_DEVICE", "auto")
# Detector compute dtype on the gpu workers: fp32 (TF32 matmuls on CUDA), or bf16 / fp16 autocast.
LABELGPT_DETECTOR_DTYPE = os.environ.get("LABELGPT_DETECTOR_DTYPE", "fp32")
if LABELGPT_DETECTOR_DTYPE not in ("fp32", "bf16", "fp16"):
    raise ImproperlyConfigured(
        f"LABELGPT_DETECTOR_DTYPE must be fp32, bf16 or fp16, got {LABELGPT_DETECTOR_DTYPE!r}"
    )
# How the web process runs SAM's decoder for clicks: "torch", or "onnx" / "auto" (the same:
# onnxruntime on a CPU, the decoder exported once per checkpoint into LABELGPT_MODELS_DIR/onnx;
# torch, logged, when onnxruntime is missing or the export fails).
LABELGPT_CLICK_BACKEND = os.environ.get("LABELGPT_CLICK_BACKEND", "auto")
if LABELGPT_CLICK_BACKEND not in ("auto", "onnx", "torch"):
    raise ImproperlyConfigured(
        f"LABELGPT_CLICK_BACKEND must be auto, onnx or torch, got {LABELGPT_CLICK_BACKEND!r}"
    )
# Local path or URL of each segmenter's checkpoint, by name (LABELGPT_SAM_CHECKPOINT_VIT_B → vit_b,
# for every name a segmenter family offers); the official download URL when unset.
LABELGPT_SAM_CHECKPOINTS = {
    key.removeprefix("LABELGPT_SAM_CHECKPOINT_").lower(): value
    for key, value in os.environ.items()
    if key.startswith("LABELGPT_SAM_CHECKPOINT_") and value
}

# Model allowlist (issue 11, point 9) ----------------------------------------------------------
# The only detectors and segmenters a project may choose, by name: a manager picks a name from
# these lists, the workers load what the name maps to, and nothing else is ever loaded.
#   LABELGPT_DETECTORS: a JSON object, name → Hugging Face hub id or local folder (on the gpu
#     workers), e.g. '{"grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
#     "gdino-ours": "/models/gdino-finetuned"}'. Default: the two IDEA-Research Grounding DINO
#     checkpoints and SAM 3 (facebook/sam3), each named by its hub id (the names projects
#     already hold).
#   LABELGPT_SEGMENTERS: a JSON object, name → checkpoint (local file or http(s) URL; "" for
#     LABELGPT_SAM_CHECKPOINT_<NAME> or else the official download), or a JSON list of names;
#     every name must be one a segmenter family offers (vit_b, vit_l, vit_h). Unset (None):
#     every such name.
# A name that cannot be loaded answers 'the detector "X" is not available on this server' to
# users; the reason (and the path) goes to the server log only.


def _model_list(variable: str) -> dict[str, str] | None:
    import json

    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{variable} is not valid JSON: {exc}") from exc
    if isinstance(value, list):
        value = dict.fromkeys(value, "")
    if (
        not isinstance(value, dict)
        or not value
        or not all(
            isinstance(k, str) and 0 < len(k.strip()) <= 200 and isinstance(v, str) for k, v in value.items()
        )
    ):
        raise ImproperlyConfigured(
            f"{variable} must be a non-empty JSON object of model names (1 to 200 characters) to strings"
        )
    return {name.strip(): source.strip() for name, source in value.items()}


LABELGPT_DETECTORS = _model_list("LABELGPT_DETECTORS") or {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "IDEA-Research/grounding-dino-base": "IDEA-Research/grounding-dino-base",
    "facebook/sam3": "facebook/sam3",  # gated on the hub: its weights need an accepted licence
}
if not all(LABELGPT_DETECTORS.values()):
    raise ImproperlyConfigured("LABELGPT_DETECTORS: every detector name needs a hub id or a local folder")
LABELGPT_SEGMENTERS = _model_list("LABELGPT_SEGMENTERS")
# ----------------------------------------------------------------------------------------------
# SAM image embeddings, shared by the gpu workers (write) and the web (click-to-segment);
# empty means MEDIA_ROOT/embeddings.
LABELGPT_EMBEDDINGS_DIR = os.environ.get("LABELGPT_EMBEDDINGS_DIR", "")
LABELGPT_PRELABEL_BATCH_SIZE = env_int("LABELGPT_PRELABEL_BATCH_SIZE", 4)
LABELGPT_PREFETCH_AHEAD = env_int("LABELGPT_PREFETCH_AHEAD", 3)
# Batches of one job sent to the gpu queue at a time (each batch sends the next as it ends); at
# least the number of gpu worker processes, so that none waits.
LABELGPT_PRELABEL_BATCHES_IN_FLIGHT = env_int("LABELGPT_PRELABEL_BATCHES_IN_FLIGHT", 2)
# A running batch heartbeats three times per lease (from a thread of its worker) and before each
# image; silent this long (its worker died), or not taken from the queue this long while a gpu
# worker was free (its message was lost), the sweeper hands its images out again. Independent of
# the broker's visibility timeout: a dead worker or a lost message costs about this much.
LABELGPT_BATCH_LEASE_SECONDS = env_int("LABELGPT_BATCH_LEASE_SECONDS", 120)
# An image handed out this many times (its worker died each time: a poison image) fails.
LABELGPT_BATCH_MAX_ATTEMPTS = env_int("LABELGPT_BATCH_MAX_ATTEMPTS", 3)
# How often Celery beat runs the sweeper (labeling.tasks.prelabel_jobs_sweep).
LABELGPT_SWEEP_SECONDS = env_int("LABELGPT_SWEEP_SECONDS", 30)
# Each worker writes a sign of life (labeling.models.WorkerBeat) this often; one silent for three
# beats is taken as gone (`prelabel --wait`, the sweeper, the jobs panel).
LABELGPT_WORKER_BEAT_SECONDS = env_int("LABELGPT_WORKER_BEAT_SECONDS", 10)
# The dashboard's quality figures are a snapshot computed by a task (labeling.services.dashboard):
# a view of a project that changed queues a recompute once they are older than this; a queued
# recompute that never landed (a lost message) is queued again after the second figure.
LABELGPT_DASHBOARD_SNAPSHOT_SECONDS = env_int("LABELGPT_DASHBOARD_SNAPSHOT_SECONDS", 300)
LABELGPT_DASHBOARD_REQUEUE_SECONDS = env_int("LABELGPT_DASHBOARD_REQUEUE_SECONDS", 900)

# Review ----------------------------------------------------------------------------------------
# An image handed to an annotator stays theirs this long; every write on it renews the lease, and
# an expired lease is free for the next annotator who asks for work.
LABELGPT_LEASE_MINUTES = env_int("LABELGPT_LEASE_MINUTES", 30)

# REST API (labeling/api/) ---------------------------------------------------------------------
# Token first: an anonymous caller gets 401 with a WWW-Authenticate header, not 403.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"auth": os.environ.get("LABELGPT_AUTH_THROTTLE", "10/min")},
    "EXCEPTION_HANDLER": "labeling.api.views.exception_handler",
    # Issue 11: JSON bodies parsed with limits (depth, integer length, finite numbers); JSON
    # answers only (no browsable API: ?format=api is a 404, Accept: text/html a 406).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LabelGPT API",
    "DESCRIPTION": "Projects, images, annotations, pre-label jobs, exports and imports. "
    "Authenticate with `Authorization: Token <key>` (POST /api/v1/auth/token/) or a session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Self-hosted Swagger UI (the CSP allows scripts from this site only).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Operations grouped by resource: each view says its tag and summaries (labeling.api.schema.doc).
    "TAGS": [
        {"name": "auth", "description": "API tokens: get one with a username and password, revoke yours."},
        {"name": "projects", "description": "Projects: list, create, read and change their settings."},
        {"name": "classes", "description": "A project's label classes (names, prompts, colors, thresholds)."},
        {"name": "members", "description": "Who works on a project, and as what (manager or annotator)."},
        {"name": "images", "description": "A project's images: list, upload, read, delete, find by name."},
        {
            "name": "review",
            "description": "Reviewing an image: lease it, submit or skip it, the queue's next and previous "
            "images, the filmstrip, the review threshold.",
        },
        {
            "name": "annotations",
            "description": "An image's annotations: draw, edit, delete, accept or reject, one or many "
            "at once.",
        },
        {
            "name": "segmentation",
            "description": "Click-to-segment: a mask from points or a box (SAM); find more objects "
            "like an annotation (SAM 3).",
        },
        {"name": "jobs", "description": "Pre-label jobs: start, follow and cancel the model's proposals."},
        {"name": "exports", "description": "Dataset exports (COCO, YOLO, VOC): start, follow, download."},
        {"name": "imports", "description": "Annotation imports from a dataset file: start one, follow it."},
        {
            "name": "prompt-lab",
            "description": "The prompt lab: measure candidate prompts for a class on images reviewed as done "
            "(precision, recall, F1, COCO AP), then use the best one.",
        },
    ],
    "ENUM_NAME_OVERRIDES": {
        "ImageStatusEnum": "labeling.models.Image.Status",
        "JobStatusEnum": "labeling.models.JobStatus",
        "ExportFormatEnum": "labeling.formats.registry.export_choices",
        "ImportFormatEnum": "labeling.formats.registry.import_choices",  # ImportJob and its input
        "DetectorEnum": "labeling.model_choices.detector_choices",  # a project's and a job's
    },
}

# Login limits, client addresses, shared cache, password mail (issue 11) -----------------------
# One cache for every web process (API throttles, queued-embedding dedupe): Redis when CACHE_URL is
# set, else a table of the database (created by `migrate`: labeling.apps runs createcachetable).
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "labelgpt_cache"}
}
# The client address is the socket's peer unless this many reverse proxies (each appending to
# X-Forwarded-For) stand in front of the app: then the address the nearest untrusted hop gave.
# The API's throttles and the login lockout (django-axes) read it with one function
# (labeling.client_address).
LABELGPT_TRUSTED_PROXIES = env_int("LABELGPT_TRUSTED_PROXIES", 0)
if LABELGPT_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("LABELGPT_TRUSTED_PROXIES must be 0 or more")
REST_FRAMEWORK["NUM_PROXIES"] = LABELGPT_TRUSTED_PROXIES  # DRF's own rule, for any other throttle
AXES_CLIENT_IP_CALLABLE = "labeling.client_address.client_address"
# Failed logins (the login form and POST /api/v1/auth/token/): after LABELGPT_LOGIN_FAILURE_LIMIT
# failures for one user name, or from one client address, logins are refused (429) for
# LABELGPT_LOGIN_COOLOFF_MINUTES; the attempts are rows of the database (axes' database handler).
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes' documentation says
# Benchmarks only (bench/scale.py): each response says in an X-Query-Count header how many SQL
# queries its request ran (labeling.middleware.QueryCountHeaderMiddleware). Off by default.
LABELGPT_QUERY_COUNT_HEADER = env_bool("LABELGPT_QUERY_COUNT_HEADER", False)
if LABELGPT_QUERY_COUNT_HEADER:
    MIDDLEWARE.insert(0, "labeling.middleware.QueryCountHeaderMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LABELGPT_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LABELGPT_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_LOCKOUT_CALLABLE = "labeling.views.accounts.lockout_response"
AXES_USERNAME_FORM_FIELD = "username"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this user name or from this address: try again in "
    f"{AXES_COOLOFF_TIME.total_seconds() / 60:g} minutes, or ask an administrator to unlock it."
)
# Password reset mail goes through Django's email settings; without EMAIL_HOST (and with the
# default SMTP backend) the reset page tells the user to ask an administrator.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "labelgpt@localhost")
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# Invitations (issue 14): a manager invites an e-mail address; the single-use link expires after
# LABELGPT_INVITATION_DAYS, and is mailed when mail is configured (above). A client address that
# opens LABELGPT_INVITATION_FAILURE_LIMIT bad links (tampered or unknown) waits AXES_COOLOFF_TIME.
LABELGPT_INVITATION_DAYS = env_int("LABELGPT_INVITATION_DAYS", 7)
LABELGPT_INVITATION_FAILURE_LIMIT = env_int("LABELGPT_INVITATION_FAILURE_LIMIT", 10)

# Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "broker"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 30 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 35 * 60)
# Redis: an unacknowledged task (its worker died) goes back to the queue after this many seconds.
# Pre-label batches do not rely on it (their leases are in the database, see the sweeper).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 300)
# Redis: a prefix for every key of the broker (and the result backend), so that several apps or
# test runs can share one Redis database without taking each other's tasks.
CELERY_BROKER_KEYPREFIX = os.environ.get("CELERY_BROKER_KEYPREFIX", "")
# Celery beat's schedule file (the sweeper's last run).
CELERY_BEAT_SCHEDULE_FILE = VAR_DIR / "celerybeat-schedule"

# Security (production values are enforced when DEBUG is off and HTTPS is declared) ----------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("LABELGPT_HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
