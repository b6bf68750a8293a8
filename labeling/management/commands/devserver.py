"""`make run`: migrate, seed the demo on first run, then serve the web app, one Celery worker per
queue (so an export, an embedding and a pre-label batch run side by side) and Celery beat (the
pre-label sweeper). The web process never loads a model: only the gpu and interactive workers do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from labeling import queues

from .seed_demo import read_credentials


class Command(BaseCommand):
    help = (
        "Run the web server, Celery workers for the default, gpu and interactive queues, and Celery "
        "beat together; Ctrl+C stops them all."
    )

    # (queue, concurrency): one model-running process for "gpu" (batches) and one for
    # "interactive" (the embeddings a review page asks for: a pre-label job cannot block them).
    WORKERS = ((queues.DEFAULT, 1), (queues.GPU, 1), (queues.INTERACTIVE, 1))

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-worker", action="store_true", help="Serve pages only.")

    def handle(self, *args, port: int, host: str, no_worker: bool, **options):
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready.")
        call_command("seed_demo", if_empty=True, quiet=True)

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DEBUG", "1")
        children: list[subprocess.Popen] = []
        if not no_worker:
            for queue, concurrency in self.WORKERS:
                worker = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queue,
                          "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip",
                          "--without-mingle", "--without-heartbeat",
                          "--hostname", f"{queue}-{os.getpid()}@%h"]  # fmt: skip
                children.append(subprocess.Popen(worker, env=env))
            beat = [sys.executable, "-m", "celery", "-A", "webapp", "beat", "--loglevel", "INFO",
                    "--schedule", str(settings.CELERY_BEAT_SCHEDULE_FILE)]  # fmt: skip
            children.append(subprocess.Popen(beat, env=env))
        web = [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        children.append(subprocess.Popen(web, env=env, cwd=settings.BASE_DIR))
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nLabelGPT is running at {url}  (Ctrl+C stops it)"))
        for username, password in read_credentials().items():
            self.stdout.write(f"  login: {username:<10} password: {password}")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl+C, or a process manager's stop
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set() and all(child.poll() is None for child in children):
            stop.wait(0.5)
        if stop.is_set():
            self.stdout.write("\nStopping…")
        else:
            self.stderr.write("A process stopped; stopping the others.")
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
