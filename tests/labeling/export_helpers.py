"""Tiny synthetic datasets for the export tests: small real images, masks made with numpy."""

from __future__ import annotations

import numpy as np

from inference.masks import mask_box, mask_to_polygons, mask_to_rle
from labeling.models import Annotation, Image
from tests.conftest import plain_images

W, H = 64, 48


def rect(top, left, bottom, right) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def disk(cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


def holed() -> np.ndarray:
    mask = rect(8, 8, 40, 56)
    mask[16:32, 20:44] = False
    return mask


def two_parts() -> np.ndarray:
    return rect(4, 4, 20, 20) | rect(28, 36, 44, 60)


def add(image: Image, label_class, *, mask=None, box=None, state="accepted", score=None) -> Annotation:
    if mask is not None:
        box = mask_box(mask)
    return Annotation.objects.create(
        image=image,
        label_class=label_class,
        x=box[0],
        y=box[1],
        w=box[2],
        h=box[3],
        mask=mask_to_rle(mask) if mask is not None else None,
        polygons=mask_to_polygons(mask) if mask is not None else None,
        state=state,
        score=score,
        source="model" if state == "proposed" else "human",
    )


def build(project) -> dict:
    """Four 64 × 48 images:
    0: cat with a hole (accepted), cup in two parts (accepted);
    1: cat disk (accepted), cat box only (accepted, fractional), cup proposal 0.9, cat proposal 0.1;
    2: a rejected cat only; 3: nothing. All four are done (reviewed): the default export
    (done images only) writes them all."""
    images = plain_images(project, 4)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(status=Image.Status.DONE)
    cat, cup = list(project.classes.all())
    anns = {
        "holed": add(images[0], cat, mask=holed()),
        "two_parts": add(images[0], cup, mask=two_parts()),
        "disk": add(images[1], cat, mask=disk(24, 30, 12)),
        "box": add(images[1], cat, box=(3.25, 5.5, 10.125, 7.75)),
        "proposal_high": add(images[1], cup, mask=rect(2, 40, 12, 62), state="proposed", score=0.9),
        "proposal_low": add(images[1], cat, box=(1, 1, 5, 5), state="proposed", score=0.1),
        "rejected": add(images[2], cat, box=(1, 1, 5, 5), state="rejected"),
    }
    return {"images": images, "cat": cat, "cup": cup, "anns": anns}


def bare_images(project, n: int, start: int = 0) -> list[Image]:
    """n Image rows without files (for query-count tests)."""
    rows = [
        Image(
            project=project, file="", sha256=f"{start + i:064x}", width=W, height=H, original_name=f"b{i}.png"
        )
        for i in range(n)
    ]
    return Image.objects.bulk_create(rows)
