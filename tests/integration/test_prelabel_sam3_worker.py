"""A SAM 3 pre-label job on a real `celery worker` (tiny models): the demo project that
`manage.py seed_demo` builds, its job choosing the tiny SAM 3 over the project's Grounding DINO,
runs to the end, and every proposal stored is SAM 3's own: its score, and a mask that is the one
the tiny SAM 3 gives for that image (cleaned by the pipeline), not a SAM decoder's."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from inference.masks import rle_to_mask
from inference.models.sam3 import Sam3Detector
from inference.prompts import ClassPrompt
from labeling.management.commands.seed_demo import DEMO_PROJECT, SAMPLE_PHOTOS
from labeling.models import Annotation, Image, JobStatus, LabelClass, PrelabelJobItem, Project
from labeling.services import prelabel
from tests.integration.test_prelabel_worker import wait_until_ended

pytestmark = pytest.mark.integration

DETECTORS = {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "sam3": "facebook/sam3",
}
MAX_INSTANCES = 3  # per class and image: the tiny model's ragged masks make polygons slow


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture
def demo(prelabel_worker_process, settings, tmp_path) -> Project:
    """The demo project as `seed_demo` makes it, on a server listing a SAM 3 detector too."""
    settings.VAR_DIR = tmp_path / "var"
    settings.LABELGPT_DETECTORS = DETECTORS
    prelabel_worker_process.env["LABELGPT_DETECTORS"] = json.dumps(DETECTORS)
    call_command("seed_demo", "--quiet", stdout=io.StringIO())
    project = Project.objects.get(name=DEMO_PROJECT)
    assert project.detector == "IDEA-Research/grounding-dino-tiny"
    project.box_threshold, project.keep_threshold = 0.3, 0.25  # the tiny SAM 3's scores straddle it
    project.save()
    LabelClass.objects.filter(project=project).update(max_instances=MAX_INSTANCES)
    return project


def test_a_sam3_job_pre_labels_the_demo_on_the_worker(prelabel_worker_process, demo, tiny_models_dir):
    images = list(Image.objects.filter(project=demo).order_by("pk"))
    assert len(images) == len(SAMPLE_PHOTOS)
    prelabel_worker_process.start()

    job = prelabel.prelabel_job_start(project=demo, user=None, options=prelabel.JobOptions(detector="sam3"))
    job = wait_until_ended(job, prelabel_worker_process)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.params["detector"] == "sam3"
    assert (job.done, job.failed) == (len(images), 0)
    assert set(job.items.values_list("status", flat=True)) == {PrelabelJobItem.Status.DONE}
    rows = list(Annotation.objects.filter(job=job).select_related("label_class"))
    assert rows and job.annotation_count == len(rows)

    # What the tiny SAM 3 itself finds on each stored image, in this process.
    detector = Sam3Detector.load(str(tiny_models_dir / "tiny" / "sam3"), device="cpu")
    classes = sorted(job.params["classes"], key=lambda c: c["id"])
    prompts = [ClassPrompt(name=c["name"], prompt=c["prompt"], max_instances=MAX_INSTANCES) for c in classes]
    keep = job.params["keep_threshold"]
    checked = 0
    for image in images:
        with image.file.open("rb") as handle:
            picture = PILImage.open(handle).convert("RGB")
        (expected,) = detector.detect([picture], prompts, keep_threshold=keep)
        stored = [a for a in rows if a.image_id == image.pk]
        assert len(stored) == len(expected)
        for a in stored:
            index = next(i for i, c in enumerate(classes) if c["id"] == a.label_class_id)
            match = [d for d in expected if d.class_index == index and abs(d.score - a.score) < 1e-4]
            assert match, f"{a.label_class.name} {a.score} is not one of SAM 3's detections"
            assert a.source == Annotation.Source.MODEL and a.score > keep
            if a.mask is not None:  # SAM 3's mask, through the pipeline's hygiene
                mask = rle_to_mask(a.mask)
                assert mask.shape == (image.height, image.width)
                assert max(iou(mask, d.mask) for d in match) >= 0.9
                checked += 1
    assert checked >= len(images)
