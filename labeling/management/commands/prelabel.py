"""`manage.py prelabel PROJECT_ID [--wait]`: start a pre-label job, optionally follow it."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import prelabel
from labeling.models import JobStatus, PrelabelJob, Project


class Command(BaseCommand):
    help = "Pre-label a project's images with its detector and segmenter (a background job)."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--wait", action="store_true", help="Follow the job with a progress bar.")
        parser.add_argument("--classes", help="Comma-separated class names (default: all).")
        parser.add_argument("--box-threshold", type=float)
        parser.add_argument("--text-threshold", type=float)
        parser.add_argument("--scope", choices=sorted(prelabel.SCOPES), default="new")

    def handle(self, *args, project_id: int, wait: bool, classes: str | None, scope: str, **options):
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
        )
        try:
            job = prelabel.prelabel_job_start(project=project, user=None, options=job_options)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Job {job.pk} queued: {job.total} image(s) of {project.name}.")
        if wait:
            self._follow(job.pk)

    def _follow(self, job_id: int) -> None:
        job = PrelabelJob.objects.get(pk=job_id)
        with tqdm(total=job.total, unit="img", desc=f"job {job_id}") as bar:
            while True:
                job.refresh_from_db()
                bar.n = job.finished_count
                bar.set_postfix(failed=job.failed, proposals=job.annotation_count, status=job.status)
                bar.refresh()
                if not job.is_active:
                    break
                time.sleep(1)
        if job.status == JobStatus.SUCCEEDED:
            self.stdout.write(
                self.style.SUCCESS(f"Done: {job.done} image(s), {job.annotation_count} proposals.")
            )
        else:
            raise CommandError(f"Job {job_id} {job.status}: {job.error or f'{job.failed} image(s) failed'}")
