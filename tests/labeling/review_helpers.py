"""Helpers for the review tests: image and annotation rows made directly (no files, no models; the
project page and dashboard tests make their image rows here too), and JSON calls to the API the
way the review page (static/js/review.js) makes them."""

from __future__ import annotations

import json

import numpy as np
from django.urls import reverse

from inference.masks import mask_to_rle
from labeling.models import Annotation, Image, Membership, Project
from labeling.services.projects import membership_set
from tests.conftest import make_user

WIDTH, HEIGHT = 64, 48


def add_images(
    project: Project,
    count: int,
    *,
    status: str = Image.Status.PRELABELED,
    start: int = 0,
    width: int = WIDTH,
    height: int = HEIGHT,
    **fields,
) -> list[Image]:
    """`count` image rows (64 × 48 unless told) numbered from `start`, in upload order, with any
    other `fields` (reviewed_by, ...); their files are never read by these tests."""
    Image.objects.bulk_create(
        Image(
            project=project,
            file=f"projects/{project.pk}/images/{i:064x}.png",
            thumbnail=f"projects/{project.pk}/thumbs/{i:064x}.jpg",
            sha256=f"{i:064x}",
            width=width,
            height=height,
            original_name=f"img-{i:04d}.png",
            status=status,
            **fields,
        )
        for i in range(start, start + count)
    )
    return list(project.images.filter(sha256__in=[f"{i:064x}" for i in range(start, start + count)]))


def add_annotation(image: Image, *, label_class=None, box=(4.0, 5.0, 20.0, 10.0), **fields) -> Annotation:
    """A model proposal unless `source` / `state` say otherwise."""
    fields = {"source": Annotation.Source.MODEL, "state": Annotation.State.PROPOSED, "score": 0.8, **fields}
    x, y, w, h = box
    return Annotation.objects.create(
        image=image,
        label_class=label_class or image.project.classes.first(),
        x=x,
        y=y,
        w=w,
        h=h,
        **fields,
    )


def add_annotations(image: Image, count: int) -> None:
    """`count` proposals with masks and polygons (what a pre-label job leaves)."""
    label_class = image.project.classes.first()
    rle = rle_of_box((4, 5, 20, 10))
    Annotation.objects.bulk_create(
        Annotation(
            image=image,
            label_class=label_class,
            x=4,
            y=5,
            w=20,
            h=10,
            mask=rle,
            polygons=[[[4, 5, 24, 5, 24, 15, 4, 15]]],
            score=0.2 + 0.7 * (i % 10) / 10,
            phrase="cat",
            source=Annotation.Source.MODEL,
            state=Annotation.State.PROPOSED,
        )
        for i in range(count)
    )


def rle_of_box(box, *, width: int = WIDTH, height: int = HEIGHT) -> dict:
    x, y, w, h = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask_to_rle(mask)


def member(project: Project, username: str, role: str = Membership.Role.ANNOTATOR):
    user = make_user(username)
    membership_set(project=project, user=user, role=role)
    return user


def annotations_url(image: Image) -> str:
    return reverse("api-image-annotations", kwargs={"image_id": image.pk})


def annotation_url(annotation_id: int) -> str:
    return reverse("api-annotation", kwargs={"annotation_id": annotation_id})


def image_url(name: str, image: Image) -> str:
    return reverse(name, kwargs={"image_id": image.pk})


def call(client, method: str, url: str, body=None, *, version=None, **extra):
    """A JSON request; `version` goes into If-Match as the review page sends it."""
    if version is not None:
        extra["HTTP_IF_MATCH"] = f'"{version}"'
    data = "" if body is None else (body if isinstance(body, str | bytes) else json.dumps(body))
    return getattr(client, method.lower())(url, data=data, content_type="application/json", **extra)
