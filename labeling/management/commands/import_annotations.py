"""`manage.py import_annotations PROJECT_ID FILE --format coco|yolo|voc [--create-classes]`."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.formats.registry import import_names
from labeling.models import Project
from labeling.services.imports import annotations_import


class Command(BaseCommand):
    help = "Import annotations (COCO JSON, YOLO zip, Pascal VOC zip) into a project: all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", required=True, choices=import_names())
        parser.add_argument(
            "--create-classes", action="store_true", help="Create classes the project does not have."
        )

    def handle(self, *args, project_id: int, file: Path, format: str, create_classes: bool, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project with id {project_id}.")
        if not file.is_file():
            raise CommandError(f"No such file: {file}.")
        with file.open("rb") as handle:
            report = annotations_import(
                project=project,
                fileobj=handle,
                name=file.name,
                format=format,
                user=None,
                create_classes=create_classes,
            )
        for name, reason in report.skipped:
            self.stderr.write(f"skipped {name}: {reason}")
        if not report.ok:
            for where, what in report.errors:
                self.stderr.write(f"{where}: {what}")
            if report.more_errors:
                self.stderr.write(f"... and {report.more_errors} more error(s).")
            raise CommandError(f"Nothing was imported: {len(report.errors) + report.more_errors} error(s).")
        self.stdout.write(
            f"Imported {report.created_annotations} annotation(s): {len(report.matched_images)} image(s) "
            f"matched, {len(report.created_images)} new, {len(report.created_classes)} new class(es)"
            + (f" ({', '.join(report.created_classes)})" if report.created_classes else "")
            + f", {len(report.skipped)} skipped."
        )
