"""`manage.py export PROJECT_ID --format F --out FILE`: write an export directly (no Celery)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from labeling.formats.base import FormatError
from labeling.formats.registry import export_choices, export_options
from labeling.models import Project
from labeling.services import exports


class Command(BaseCommand):
    help = "Export a project's annotations as COCO, YOLO (detect / segment) or Pascal VOC."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--format", required=True, choices=[name for name, _ in export_choices()])
        parser.add_argument("--out", required=True, help="The file to write (.json or .zip).")
        parser.add_argument("--states", default="accepted", help='"accepted" or "accepted,proposed".')
        parser.add_argument("--classes", default="", help="Class names or ids, comma-separated.")
        empty = parser.add_mutually_exclusive_group()
        empty.add_argument("--include-empty", dest="include_empty", action="store_true", default=True)
        empty.add_argument("--exclude-empty", dest="include_empty", action="store_false")
        parser.add_argument("--zip-images", action="store_true", help="COCO: a zip with the images.")
        parser.add_argument("--rle", action="store_true", help="COCO: every mask as RLE.")
        parser.add_argument(
            "--images",
            default="done",
            choices=["done", "done_prelabeled", "all"],
            help="Which images: done only (default), done and pre-labeled, or all.",
        )
        parser.add_argument(
            "--val-ratio", type=float, default=None, help="YOLO / VOC: the val share (YOLO's default 0.1)."
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--val-is-train", action="store_true", help="YOLO: no held-out images, val = the training images."
        )
        parser.add_argument("--segment-parts", choices=["merge", "largest"], default=None)
        parser.add_argument("--box-segmentation", choices=["polygon", "none"], default=None)

    def handle(self, *args, project_id: int, out: str, **opts):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project {project_id}.")
        class_ids = None
        if opts["classes"].strip():
            by_name = {c.name.lower(): c.pk for c in project.classes.all()}
            class_ids = []
            for item in (s.strip() for s in opts["classes"].split(",") if s.strip()):
                if item.lower() in by_name:
                    class_ids.append(by_name[item.lower()])
                elif item.isdigit():
                    class_ids.append(int(item))
                else:
                    raise CommandError(f"No class {item!r} in project {project_id}.")
        try:
            given = {
                "states": opts["states"],
                "images": opts["images"],
                "class_ids": class_ids,
                "include_empty": opts["include_empty"],
                "zip_images": opts["zip_images"],
                "rle": opts["rle"],
                "val_ratio": opts["val_ratio"],
                "seed": opts["seed"],
                "val_is_train": opts["val_is_train"],
                "segment_parts": opts["segment_parts"],
                "box_segmentation": opts["box_segmentation"],
            }
            options = export_options(opts["format"], {k: v for k, v in given.items() if v is not None})
            start = time.perf_counter()
            images, annotations = exports.export_write(
                project=project, fmt=opts["format"], options=options, out=out
            )
        except FormatError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Wrote {out}: {images} image(s), {annotations} annotation(s)"
            f" in {time.perf_counter() - start:.1f} s."
        )
