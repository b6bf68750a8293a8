"""Deleting images from the project page's grid (issue 14): services.images.images_delete deletes
the rows with their annotations, files, thumbnails and the SAM embeddings no other image (of any
project) still uses; an image someone else is reviewing is left and reported; the counts follow;
the page asks first (how many images, how many annotations) and only managers may; the API's
DELETE of one image is the same service."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from labeling.models import Annotation, Image, Membership, ProjectCounts
from labeling.services.counters import image_counts_recompute, project_counts_actual
from labeling.services.images import images_delete, images_ingest
from labeling.services.prelabel import embedding_cache
from labeling.services.projects import membership_set, project_create
from tests.conftest import image_bytes, plain_images
from tests.labeling.review_helpers import add_annotation

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SEGMENTERS = ("sam-vit-b", "tiny-sam")


@pytest.fixture(autouse=True)
def _embeddings_under_media(settings):
    settings.LABELGPT_EMBEDDINGS_DIR = ""


def plant_embeddings(image: Image) -> list:
    """An embedding file of the image's bytes for each of two segmenters."""
    store = embedding_cache()
    paths = []
    for name in SEGMENTERS:
        path = store.path(image.sha256, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"npz")
        paths.append(path)
    return paths


def files_of(image: Image) -> list[str]:
    return [image.file.name, image.thumbnail.name]


def assert_counts_exact(project) -> None:
    row = ProjectCounts.objects.get(project=project)
    actual = project_counts_actual(project_id=project.pk)
    assert {field: getattr(row, field) for field in actual} == actual
    assert image_counts_recompute(project_id=project.pk) == []


@pytest.fixture
def world(project, manager, outsider):
    """Three images of the project with annotations; another project holding the same bytes as the
    first image (its embeddings are shared)."""
    first, second, third = plain_images(project, 3)
    for image, n in ((first, 2), (second, 3), (third, 1)):
        for _ in range(n):
            add_annotation(image)
    other = project_create(user=outsider, name="Elsewhere", classes=[{"name": "x"}])
    images_ingest(project=other, files=[("same.png", io.BytesIO(image_bytes(color=(0, 100, 200))))])
    twin = other.images.get()
    assert twin.sha256 == first.sha256
    return {"project": project, "images": [first, second, third], "other": other, "twin": twin}


def test_the_images_go_with_their_files_annotations_and_unshared_embeddings(
    world, manager, django_capture_on_commit_callbacks
):
    project = world["project"]
    first, second, third = world["images"]
    shared, own = plant_embeddings(first), plant_embeddings(second)
    stored = files_of(first) + files_of(second)
    assert all(default_storage.exists(name) for name in stored)
    with django_capture_on_commit_callbacks(execute=True):
        result = images_delete(project=project, image_ids=[first.pk, second.pk], user=manager)
    assert (result.deleted, result.annotations, result.held) == ([first.pk, second.pk], 5, [])
    assert list(project.images.values_list("pk", flat=True)) == [third.pk]
    assert not Annotation.objects.filter(image_id__in=[first.pk, second.pk]).exists()
    assert not any(default_storage.exists(name) for name in stored)
    assert all(default_storage.exists(name) for name in files_of(third))
    assert not any(path.exists() for path in own)  # no image has those bytes any more
    assert all(path.exists() for path in shared)  # the other project's twin still uses them
    assert_counts_exact(project)
    assert ProjectCounts.objects.get(project=project).images_new == 1
    assert ProjectCounts.objects.get(project=project).annotations_proposed == 1


def test_an_image_someone_else_reviews_is_left_and_reported(world, manager, annotator):
    project = world["project"]
    first, second, third = world["images"]
    soon = timezone.now() + timedelta(minutes=5)
    Image.objects.filter(pk=first.pk).update(assignee=annotator, lease_expires_at=soon)  # held
    Image.objects.filter(pk=second.pk).update(
        assignee=annotator, lease_expires_at=timezone.now() - timedelta(1)
    )
    Image.objects.filter(pk=third.pk).update(assignee=manager, lease_expires_at=soon)  # the deleter's own
    result = images_delete(project=project, image_ids=[first.pk, second.pk, third.pk], user=manager)
    assert result.held == [(first.pk, first.original_name, annotator.username)]
    assert result.deleted == [second.pk, third.pk] and result.annotations == 4
    assert list(project.images.values_list("pk", flat=True)) == [first.pk]
    assert_counts_exact(project)


def test_ids_of_another_project_are_ignored(world, manager):
    twin = world["twin"]
    result = images_delete(project=world["project"], image_ids=[twin.pk, 10**12], user=manager)
    assert (result.deleted, result.annotations) == ([], 0)
    assert Image.objects.filter(pk=twin.pk).exists()


def grid_delete_url(project, query: str = "") -> str:
    url = reverse("project-images-delete", kwargs={"project_id": project.pk})
    return f"{url}?{query}" if query else url


def test_the_page_asks_first_then_deletes(world, manager, client_for, django_capture_on_commit_callbacks):
    project = world["project"]
    first, second, third = world["images"]
    client = client_for(manager)
    grid = client.get(reverse("project-images", kwargs={"project_id": project.pk}), **HTMX).content.decode()
    assert 'id="grid-delete"' in grid and grid.count('class="tile-pick"') == 3 and "data-select-all" in grid

    url = grid_delete_url(project, "sort=-annotations")
    asked = client.post(url, {"image": [first.pk, second.pk]}, **HTMX)
    assert asked.status_code == 200
    text = re.sub(r"\s+", " ", asked.content.decode())
    assert "Delete <strong>2 images</strong> and <strong>5 annotations</strong>" in text
    assert project.images.count() == 3  # nothing deleted yet
    assert f'name="image" value="{first.pk}"' in text and 'name="confirm" value="1"' in text
    assert f'action="{url}"' in text  # the confirmation keeps the grid's query

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"image": [first.pk, second.pk], "confirm": "1"}, **HTMX)
    assert done.status_code == 200
    assert "2 images deleted, with 5 annotations." in done.content.decode()
    assert list(project.images.values_list("pk", flat=True)) == [third.pk]
    assert_counts_exact(project)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"image": ["abc"]},
        {"image": ["-1"]},
        {"image": ["9" * 40]},
        {"image": [str(n) for n in range(1, 600)]},
    ],
)
def test_a_bad_choice_answers_400_with_the_reason(world, manager, client_for, data):
    response = client_for(manager).post(grid_delete_url(world["project"]), data, **HTMX)
    assert response.status_code == 400
    assert 'id="delete-error"' in response.content.decode()
    assert world["project"].images.count() == 3


def test_only_managers_and_staff_may_delete(world, annotator, outsider, admin_user, client_for):
    project = world["project"]
    first = world["images"][0]
    url = grid_delete_url(project)
    payload = {"image": [first.pk], "confirm": "1"}
    assert client_for(annotator).post(url, payload, **HTMX).status_code == 403
    assert client_for(outsider).post(url, payload, **HTMX).status_code == 404
    assert client_for(annotator).get(url).status_code == 405
    assert project.images.filter(pk=first.pk).exists()
    grid = client_for(annotator).get(reverse("project-images", kwargs={"project_id": project.pk}), **HTMX)
    assert "tile-pick" not in grid.content.decode()  # no boxes for annotators
    assert client_for(admin_user).post(url, payload, **HTMX).status_code == 200
    assert not project.images.filter(pk=first.pk).exists()


def test_without_javascript_the_delete_goes_back_to_the_page(world, manager, client_for):
    project = world["project"]
    response = client_for(manager).post(
        grid_delete_url(project, "sort=name"), {"image": [world["images"][0].pk], "confirm": "1"}
    )
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url() + "?sort=name"


def test_the_api_delete_is_the_same_service_and_refuses_an_image_under_review(
    world, manager, annotator, client_for
):
    project = world["project"]
    first, second, _ = world["images"]
    membership_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    Image.objects.filter(pk=first.pk).update(
        assignee=annotator, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    client = client_for(manager)
    refused = client.delete(f"/api/v1/images/{first.pk}/")
    assert refused.status_code == 409
    assert annotator.username in refused.json()["error"]
    assert client.delete(f"/api/v1/images/{second.pk}/").status_code == 204
    assert list(project.images.values_list("pk", flat=True)) == [first.pk, world["images"][2].pk]
    assert_counts_exact(project)
