"""`manage.py prelabel PROJECT_ID [--wait | --inline]`: start a pre-label job, optionally follow it
(on the workers) or run it in this process."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.models import JobStage, JobStatus, PrelabelJob, Project
from labeling.selectors.prelabel import workers_alive
from labeling.services import prelabel


class Command(BaseCommand):
    help = "Pre-label a project's images with its detector and segmenter (a background job)."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="Follow the job with a progress bar.")
        mode.add_argument(
            "--inline", action="store_true", help="Run the job in this process (no broker, no worker)."
        )
        parser.add_argument(
            "--worker-timeout",
            type=float,
            default=5.0,
            help="--wait: seconds to wait for a worker on the gpu queue before giving up (default 5).",
        )
        parser.add_argument("--classes", help="Comma-separated class names (default: all).")
        parser.add_argument("--box-threshold", type=float)
        parser.add_argument("--text-threshold", type=float)
        parser.add_argument("--scope", choices=sorted(prelabel.SCOPES), default="new")
        parser.add_argument(
            "--detector", help="A detector name of LABELGPT_DETECTORS for this job (default: the project's)."
        )

    def handle(
        self, *args, project_id: int, wait: bool, inline: bool, classes: str | None, scope: str, **options
    ):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project with id {project_id}.")
        class_ids = None
        if classes:
            names = [n.strip().lower() for n in classes.split(",") if n.strip()]
            found = {c.name.lower(): c.pk for c in project.classes.all()}
            missing = [n for n in names if n not in found]
            if missing:
                raise CommandError(f"Unknown class(es): {', '.join(missing)}. Known: {', '.join(found)}.")
            class_ids = [found[n] for n in names]
        job_options = prelabel.JobOptions(
            class_ids=class_ids,
            box_threshold=options["box_threshold"],
            text_threshold=options["text_threshold"],
            scope=scope,
            detector=options["detector"],
        )
        try:
            job = prelabel.prelabel_job_start(
                project=project, user=None, options=job_options, enqueue=not inline
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if inline:
            self.stdout.write(f"Job {job.pk}: {job.total} image(s) of {project.name}, run in this process.")
            self._run_inline(job)
            return
        self.stdout.write(f"Job {job.pk} queued: {job.total} image(s) of {project.name}.")
        if wait:
            self._follow(job.pk, worker_timeout=options["worker_timeout"])

    def _run_inline(self, job: PrelabelJob) -> None:
        with tqdm(total=job.total, unit="img", desc=f"job {job.pk}") as bar:

            def progress() -> None:
                bar.n = sum(PrelabelJob.objects.values_list("done", "failed").get(pk=job.pk))
                bar.refresh()

            try:
                job = prelabel.prelabel_job_run_inline(job_id=job.pk, progress=progress)
            except KeyboardInterrupt:
                prelabel.prelabel_job_cancel(job=job)
                raise CommandError(f"Interrupted: job {job.pk} cancelled.") from None
            bar.n = job.finished_count
            bar.refresh()
        self._report(job)

    def _follow(self, job_id: int, *, worker_timeout: float) -> None:
        job = PrelabelJob.objects.get(pk=job_id)
        started = time.monotonic()
        warned = False
        with tqdm(total=job.total, unit="img", desc=f"job {job_id}") as bar:
            while True:
                job.refresh_from_db()
                bar.n = job.finished_count
                bar.set_postfix(
                    failed=job.failed, proposals=job.annotation_count, stage=job.get_stage_display()
                )
                bar.refresh()
                if not job.is_active:
                    break
                # The dispatch runs on the "default" queue, the batches on "gpu".
                queues = ["default", "gpu"] if job.status == JobStatus.QUEUED else ["gpu"]
                missing = [queue for queue in queues if not workers_alive(queue=queue)]
                if missing and job.stage == JobStage.QUEUED and time.monotonic() - started >= worker_timeout:
                    bar.close()
                    names = " and ".join(f"the {queue} queue" for queue in missing)
                    raise CommandError(
                        f"No worker is consuming {names} (none has reported in the last "
                        f"{3 * settings.LABELGPT_WORKER_BEAT_SECONDS} s), so job {job_id} cannot start. "
                        "It stays queued and runs once a worker starts: `make run`, or "
                        f"`celery -A webapp worker -Q {','.join(missing)}`. Or cancel it and run "
                        f"`manage.py prelabel {job.project_id} --inline` to pre-label in this process."
                    )
                if missing and job.stage != JobStage.QUEUED and not warned:
                    warned = True
                    tqdm.write(
                        "No worker is consuming the gpu queue any more: the job goes on when one "
                        "is back (its unfinished images are handed out again)."
                    )
                time.sleep(min(1.0, max(worker_timeout / 5, 0.05)))
        self._report(job)

    def _report(self, job: PrelabelJob) -> None:
        if job.status == JobStatus.SUCCEEDED:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Done: {job.done} image(s), {job.failed} failed, {job.annotation_count} proposals."
                )
            )
        else:
            raise CommandError(f"Job {job.pk} {job.status}: {job.error or f'{job.failed} image(s) failed'}")
