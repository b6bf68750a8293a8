"""Keyset pages (issue 12): the API lists that grow with a project page by cursor, with next /
previous links and no count; the last page costs the queries the first does."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.api.pagination import ByIdCursorPagination, NewestFirstCursorPagination
from labeling.models import Annotation, Export, Image, PrelabelJob
from tests.labeling import review_helpers
from tests.labeling.api_helpers import token_client

V = "/api/v1"


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(ByIdCursorPagination, "page_size", 3)
    monkeypatch.setattr(NewestFirstCursorPagination, "page_size", 2)


def walk(client, url: str, key: str) -> tuple[list[list[dict]], list[int]]:
    """Follow `key` links from url to the end: the pages' rows and each page's query count."""
    pages, queries = [], []
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        assert set(body) == {"next", "previous", "results"}  # no count
        pages.append(body["results"])
        queries.append(len(captured))
        url = body[key]
    return pages, queries


def test_the_image_list_walks_forward_and_back_by_cursor(project, manager, small_pages):
    images = review_helpers.add_images(project, 10)
    for i, image in enumerate(images[:7]):
        review_helpers.add_annotation(image, state=Annotation.State.ACCEPTED)
        if i % 2:
            review_helpers.add_annotation(image)
    client = token_client(manager)

    forward, queries = walk(client, f"{V}/projects/{project.pk}/images/", "next")
    assert [len(page) for page in forward] == [3, 3, 3, 1]
    ids = [row["id"] for page in forward for row in page]
    assert ids == sorted(image.pk for image in images)  # every image once, in id order
    counts = {row["id"]: (row["annotation_count"], row["proposal_count"]) for page in forward for row in page}
    assert counts == {
        image.pk: ((2, 1) if i < 7 and i % 2 else (1, 0) if i < 7 else (0, 0))
        for i, image in enumerate(images)
    }
    assert queries[0] == queries[-1]

    # Back from the last page through `previous` links: the same pages, in reverse.
    last = _last_page_url(client, f"{V}/projects/{project.pk}/images/")
    backward, back_queries = walk(client, last, "previous")
    assert [[row["id"] for row in page] for page in backward] == [
        [row["id"] for row in page] for page in reversed(forward)
    ]
    assert back_queries[0] == back_queries[-1] == queries[0]


def _last_page_url(client, url: str) -> str:
    while True:
        body = client.get(url).json()
        if body["next"] is None:
            return url
        url = body["next"]


def test_a_filter_holds_across_cursor_pages(project, manager, small_pages):
    review_helpers.add_images(project, 4)
    done = review_helpers.add_images(project, 5, start=4, status=Image.Status.DONE)
    pages, _ = walk(token_client(manager), f"{V}/projects/{project.pk}/images/?status=done", "next")
    assert [row["id"] for page in pages for row in page] == [image.pk for image in done]
    assert pages[-1] and all(page for page in pages)


def test_an_image_annotations_page_by_cursor(project, manager, small_pages):
    (image,) = review_helpers.add_images(project, 1)
    made = [review_helpers.add_annotation(image).pk for _ in range(7)]
    pages, queries = walk(token_client(manager), f"{V}/images/{image.pk}/annotations/", "next")
    assert [[row["id"] for row in page] for page in pages] == [made[0:3], made[3:6], made[6:]]
    assert queries[0] == queries[-1]


def test_exports_page_newest_first_by_cursor(project, manager, small_pages):
    made = [Export.objects.create(project=project, format="coco", created_by=manager) for _ in range(5)]
    # Three exports of the same instant straddle a page boundary: each still comes once.
    Export.objects.filter(pk__in=[e.pk for e in made[1:4]]).update(created_at=made[2].created_at)
    pages, _ = walk(token_client(manager), f"{V}/projects/{project.pk}/exports/", "next")
    newest_first = list(project.exports.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert [row["id"] for page in pages for row in page] == newest_first
    assert sorted(newest_first) == sorted(e.pk for e in made)
    assert [len(page) for page in pages] == [2, 2, 1]


def test_jobs_page_newest_first_by_cursor(project, manager, small_pages):
    made = [
        PrelabelJob.objects.create(
            project=project, params={}, total=0, created_by=manager, status=PrelabelJob.Status.SUCCEEDED
        )
        for _ in range(3)
    ]
    pages, queries = walk(token_client(manager), f"{V}/projects/{project.pk}/jobs/", "next")
    assert [[row["id"] for row in page] for page in pages] == [[made[2].pk, made[1].pk], [made[0].pk]]
    assert queries[0] == queries[-1]


def test_a_keyset_list_refuses_page_numbers(project, manager):
    response = token_client(manager).get(f"{V}/projects/{project.pk}/images/", {"page": 2})
    assert response.status_code == 400
    assert "Unknown query parameter(s): page." in response.json()["error"]
