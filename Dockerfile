# LabelGPT: one image for the web server and both Celery workers (default and gpu queues).
#
#   docker build -t labelgpt .
#   docker run --rm -p 8000:8000 -e SECRET_KEY=... -e DATABASE_URL=postgres://... labelgpt
#   docker run --rm labelgpt celery -A webapp worker -Q default
#   docker run --rm --gpus 1 labelgpt celery -A webapp worker -Q gpu --concurrency 1
#
# docker-compose.yml wires it together with PostgreSQL and Redis, and runs the migrations
# before the web server starts. torch / torchvision come from PyPI as pinned in pyproject.toml
# (CUDA builds: the same image runs on a GPU host and, without one, on the CPU).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings

# Shared libraries that the OpenCV / scikit-image / torch wheels expect on the host.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, read from pyproject.toml (with its torch / torchvision pins), so that this
# multi-GB layer is reused as long as the dependency list does not change.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. Editable, so that the code runs from /app: settings.BASE_DIR must be the
# folder that holds templates/ and static/, not site-packages.
COPY . .
RUN pip install --no-deps -e . \
    && python -m compileall -q webapp labeling inference

# Runtime locations: code and collected static files are read-only for the app user; uploads
# (MEDIA_ROOT) and var/ live under /data, owned by the app user so that named volumes mounted
# there start with the right owner. Model weights and caches go to var/models (the inference
# package's models folder), with the Hugging Face and torch caches inside it: one volume.
ENV LABELGPT_VAR_DIR=/data/var \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/staticfiles \
    LABELGPT_MANIFEST_STATIC=1 \
    HF_HOME=/data/var/models/huggingface \
    TORCH_HOME=/data/var/models/torch \
    WEB_CONCURRENCY=3 \
    GUNICORN_CMD_ARGS="--worker-tmp-dir /dev/shm --timeout 120 --graceful-timeout 30 --access-logfile -"

# Static files are collected (hashed, compressed; served by whitenoise) at build time. The
# SECRET_KEY here is a throw-away value for this one command; it is not kept in the image.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret python manage.py collectstatic --noinput

RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data/media /data/var/models/huggingface /data/var/models/torch \
    && chown -R app:app /data

USER app

EXPOSE 8000

# Web by default. Migrations are not run here (several replicas must not race on them):
# docker-compose's web service runs `manage.py migrate --noinput` before gunicorn.
# Worker count: WEB_CONCURRENCY (read by gunicorn); more flags: GUNICORN_CMD_ARGS.
CMD ["gunicorn", "webapp.wsgi:application", "--bind", "0.0.0.0:8000"]
