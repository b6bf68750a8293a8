"""The project counters under concurrent writers on PostgreSQL: threads with their own connections,
released together by a barrier, writing to one project's images and annotations at once. Every
write waits for the project's counts row in turn; none deadlocks, and the row equals a
recomputation afterwards."""

from __future__ import annotations

import contextlib

import pytest
from django.db import IntegrityError, connection, transaction

from labeling.models import Annotation, Image, ProjectCounts
from labeling.services import review
from labeling.services.counters import project_counts_actual
from labeling.services.images import image_delete
from labeling.services.projects import membership_set, project_create
from tests.conftest import make_user
from tests.labeling.concurrency import at_once
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 8


def _stored(project) -> dict[str, int]:
    row = ProjectCounts.objects.get(project=project)
    return {field: getattr(row, field) for field in project_counts_actual(project_id=project.pk)}


def test_concurrent_writers_on_one_project_keep_its_counts_exact_and_never_deadlock():
    assert connection.vendor == "postgresql"
    manager, anna, bert = make_user("manny"), make_user("anna"), make_user("bert")
    project = project_create(user=manager, name="Busy", classes=[{"name": "cat"}])
    for user in (anna, bert):
        membership_set(project=project, user=user, role="annotator")
    cat = project.classes.get()
    for round_ in range(ROUNDS):
        first, second, third, doomed = add_images(project, 4, start=round_ * 100)
        proposals = [add_annotation(second, label_class=cat, score=0.5 + i / 100) for i in range(20)]
        add_annotation(doomed, label_class=cat)

        def draw(image=first):
            for i in range(10):
                review.annotation_create(image=image, user=anna, class_id=cat.pk, box=(i, 0, 2, 2))
            review.image_submit(image=image, user=anna)

        def triage(image=second, proposals=proposals):
            review.annotations_accept_above(image=image, user=bert, min_score=0.6)
            updates = [review.StateUpdate(id=a.pk, version=1, state="rejected") for a in proposals[:10]]
            review.annotations_set_states(image=image, user=bert, updates=updates)

        def bulk(image=third, start=round_ * 100 + 50):
            with transaction.atomic():
                Annotation.objects.bulk_create(
                    Annotation(
                        image=image, label_class=cat, x=0, y=0, w=1, h=1, source="import", state="accepted"
                    )
                    for _ in range(200)
                )
                Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE)
            add_images(project, 5, start=start)

        def reviewer_on_the_doomed_image(image=doomed):
            """Before the delete: a drawn box (then cascaded); after it: refused. Never a deadlock."""
            with contextlib.suppress(review.ReviewError, IntegrityError):
                review.annotation_create(image=image, user=anna, class_id=cat.pk, box=(0, 0, 3, 3))

        def delete(image=doomed):
            """First: deleted (the reviewer is then refused); after the reviewer's box (its lease):
            refused, the image being someone else's now (409). Never a deadlock."""
            with contextlib.suppress(review.Conflict):
                image_delete(image=image)

        outcomes = at_once(draw, triage, bulk, delete, reviewer_on_the_doomed_image, join_seconds=60)
        assert outcomes == ["ok"] * 5, outcomes
        assert _stored(project) == project_counts_actual(project_id=project.pk), round_
    assert _stored(project)["images_done"] == 2 * ROUNDS
