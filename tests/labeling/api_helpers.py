"""Helpers for the REST API tests: a project with one of everything, a client by token, and a
snapshot of the data to show a refused call changed nothing (the fixtures made of them, world,
foreign, users, api_for and clear_throttles, are in tests/labeling/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import (
    Annotation,
    Export,
    FindMoreRequest,
    Image,
    ImportJob,
    Invitation,
    LabelClass,
    Membership,
    PrelabelJob,
    Project,
    PromptLabCandidate,
    PromptLabRun,
)
from labeling.services.invitations import invitation_create
from tests.conftest import plain_images

ROLES = ("admin", "manager", "annotator", "outsider", "anonymous")


@dataclass
class World:
    project: Project
    image: Image
    other_image: Image
    label_class: LabelClass
    proposal: Annotation
    drawn: Annotation
    job: PrelabelJob
    export: Export
    annotator_membership: Membership
    import_job: ImportJob
    invitation: Invitation
    find_more: FindMoreRequest
    prompt_run: PromptLabRun
    prompt_candidate: PromptLabCandidate


def build_world(project: Project, *, user, annotator=None) -> World:
    """One of everything in the project: images, a proposal and a drawn annotation, an active
    job, a finished export with its file."""
    image, other_image = plain_images(project, 2)
    label_class = project.classes.order_by("id").first()
    proposal = Annotation.objects.create(
        image=image, label_class=label_class, x=1, y=1, w=10, h=10, score=0.8,
        source=Annotation.Source.MODEL, state=Annotation.State.PROPOSED,
    )  # fmt: skip
    drawn = Annotation.objects.create(
        image=image, label_class=label_class, x=2, y=2, w=5, h=5,
        source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED, created_by=user,
    )  # fmt: skip
    job = PrelabelJob.objects.create(project=project, params={}, total=0, created_by=user)
    export = Export.objects.create(project=project, format="coco", status=Export.Status.SUCCEEDED)
    export.file.save(f"{export.pk}.json", ContentFile(b'{"images": []}'))
    annotator_membership = (
        Membership.objects.create(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
        if annotator
        else project.memberships.get(role=Membership.Role.ANNOTATOR)
    )
    import_job = ImportJob.objects.create(
        project=project, format="coco", file_name="d.json", status=ImportJob.Status.SUCCEEDED, created_by=user
    )
    # A prompt lab run still running, whose first candidate is measured already.
    prompt_run = PromptLabRun.objects.create(
        project=project, label_class=label_class, created_by=user, sample_size=1,
        image_ids=[image.pk], status=PromptLabRun.Status.RUNNING,
    )  # fmt: skip
    prompt_candidate = PromptLabCandidate.objects.create(
        run=prompt_run, position=0, prompt="a small cat", detector=project.detector,
        status=PromptLabCandidate.Status.SUCCEEDED, scores={"best_threshold": 0.5, "f1": 1.0},
    )  # fmt: skip
    return World(
        project,
        image,
        other_image,
        label_class,
        proposal,
        drawn,
        job,
        export,
        annotator_membership,
        import_job,
        invitation_create(project=project, email="invitee@example.com", role="annotator", invited_by=user)[0],
        FindMoreRequest.objects.create(
            image=image, annotation=proposal, label_class=label_class, detector="sam3", user=user
        ),
        prompt_run,
        prompt_candidate,
    )


def token_client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def snapshot() -> tuple:
    """Everything a call could change, in a few queries."""
    return (
        list(Project.objects.order_by("pk").values_list("pk", "name", "box_threshold", "updated_at")),
        list(LabelClass.objects.order_by("pk").values_list("pk", "name", "prompt", "box_threshold")),
        list(Image.objects.order_by("pk").values_list("pk", "status", "version", "reviewed_by")),
        list(Annotation.objects.order_by("pk").values_list("pk", "state", "version", "x")),
        list(PrelabelJob.objects.order_by("pk").values_list("pk", "status")),
        list(Export.objects.order_by("pk").values_list("pk", "status")),
        list(ImportJob.objects.order_by("pk").values_list("pk", "status")),
        list(Membership.objects.order_by("pk").values_list("pk", "role")),
        list(Invitation.objects.order_by("pk").values_list("pk", "revoked_at", "accepted_at")),
        list(Token.objects.order_by("user_id").values_list("user_id", "key")),
        list(FindMoreRequest.objects.order_by("pk").values_list("pk", "status")),
        list(PromptLabRun.objects.order_by("pk").values_list("pk", "status")),
    )


def coco_bytes(image_name: str, class_name: str) -> bytes:
    return json.dumps(
        {
            "images": [{"id": 1, "file_name": image_name, "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
            "categories": [{"id": 1, "name": class_name}],
        }
    ).encode()
