"""Keyset pages (issue 12): the API lists that grow with a project page by cursor, with next /
previous links and no count; the last page costs the queries the first does."""

from __future__ import annotations

from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.api.pagination import INVALID_CURSOR, ByIdCursorPagination, NewestFirstCursorPagination
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
        assert len(pages) <= 200, "the walk does not end"
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
    for _ in range(200):
        body = client.get(url).json()
        if body["next"] is None:
            return url
        url = body["next"]
    raise AssertionError("no last page in 200 pages")


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


# Two-column keyset: (created_at, id) ---------------------------------------------------------


def add_exports(project, user, count: int, *, at=None) -> list[int]:
    """`count` exports in one INSERT; all created at `at` when given (ties), else each at its own
    instant. Their ids, in creation order."""
    made = Export.objects.bulk_create(
        Export(project=project, format="coco", created_by=user, status=Export.Status.SUCCEEDED)
        for _ in range(count)
    )
    if at is not None:
        Export.objects.filter(pk__in=[e.pk for e in made]).update(created_at=at)
    return [e.pk for e in made]


def newest_first(queryset) -> list[int]:
    return list(queryset.order_by("-created_at", "-id").values_list("pk", flat=True))


def ids_of(pages: list[list[dict]]) -> list[int]:
    return [row["id"] for page in pages for row in page]


def test_many_exports_of_one_instant_walk_both_ways_without_a_gap_or_a_repeat(project, manager, monkeypatch):
    """120 exports share one created_at, between older and newer ones: more than a page of ties."""
    monkeypatch.setattr(NewestFirstCursorPagination, "page_size", 7)
    instant = timezone.now()
    add_exports(project, manager, 10, at=instant - timedelta(hours=1))
    add_exports(project, manager, 120, at=instant)
    add_exports(project, manager, 5, at=instant + timedelta(hours=1))
    add_exports(project, manager, 4)  # each its own instant (now)
    expected = newest_first(project.exports)
    client = token_client(manager)

    forward, queries = walk(client, f"{V}/projects/{project.pk}/exports/", "next")
    assert ids_of(forward) == expected  # every row once, in order
    assert [len(page) for page in forward] == [7] * 19 + [6]
    assert len(set(queries)) == 1  # the last page costs the queries the first does

    backward, back_queries = walk(
        client, _last_page_url(client, f"{V}/projects/{project.pk}/exports/"), "previous"
    )
    assert [[row["id"] for row in page] for page in backward] == [
        [row["id"] for row in page] for page in reversed(forward)
    ]
    assert set(back_queries) == set(queries)


def test_ties_beyond_drfs_offset_cap_page_completely(project, manager):
    """DRF's CursorPagination tells ties apart by an offset capped at 1,000: 1,060 exports of one
    instant, 50 a page, go through in both directions."""
    ids = add_exports(project, manager, 1060, at=timezone.now())
    client = token_client(manager)
    forward, _ = walk(client, f"{V}/projects/{project.pk}/exports/", "next")
    assert ids_of(forward) == sorted(ids, reverse=True)
    backward, _ = walk(client, _last_page_url(client, f"{V}/projects/{project.pk}/exports/"), "previous")
    assert ids_of(reversed(backward)) == sorted(ids, reverse=True)


def test_jobs_sharing_an_instant_page_by_id(project, manager, small_pages):
    made = PrelabelJob.objects.bulk_create(
        PrelabelJob(
            project=project, params={}, total=0, created_by=manager, status=PrelabelJob.Status.SUCCEEDED
        )
        for _ in range(9)
    )
    PrelabelJob.objects.filter(pk__in=[j.pk for j in made]).update(created_at=timezone.now())
    client = token_client(manager)
    forward, queries = walk(client, f"{V}/projects/{project.pk}/jobs/", "next")
    assert ids_of(forward) == sorted((j.pk for j in made), reverse=True)
    assert [len(page) for page in forward] == [2, 2, 2, 2, 1]
    assert queries[0] == queries[-1]
    backward, _ = walk(client, _last_page_url(client, f"{V}/projects/{project.pk}/jobs/"), "previous")
    assert ids_of(reversed(backward)) == ids_of(forward)


def test_rows_added_between_requests_do_not_shift_the_next_page(project, manager, small_pages):
    ids = add_exports(project, manager, 6, at=timezone.now())
    client = token_client(manager)
    first = client.get(f"{V}/projects/{project.pk}/exports/").json()
    assert [row["id"] for row in first["results"]] == ids[:-3:-1]
    add_exports(project, manager, 3)  # newer: they belong before the first page
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [ids[3], ids[2]]
    # Going back from the second page finds the first page, then the new ones before it.
    back = client.get(second["previous"]).json()
    assert [row["id"] for row in back["results"]] == ids[:-3:-1]
    assert back["previous"] is not None


def cursor_of(**tokens) -> str:
    return b64encode(urlencode(tokens).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        "%%%",
        "é",
        b64encode(b"\xff\xfe").decode(),
        cursor_of(t="abc", i="1"),
        cursor_of(t="1", i="abc"),
        cursor_of(t="1"),
        cursor_of(i="1"),
        cursor_of(t="1", i="0"),
        cursor_of(t="1", i="-4"),
        cursor_of(t="1", i="9" * 19),
        cursor_of(t="1", i="9" * 400),
        cursor_of(t="9" * 19, i="1"),
        cursor_of(t="-" + "9" * 19, i="1"),
        cursor_of(t="1e9", i="1"),
        cursor_of(t="1", i="1", r="2"),
        cursor_of(t="1", i="1", x="1"),
        cursor_of(t="1", i="1") + "&t=2",
        cursor_of(o="5", r="1", p="2026-01-01 00:00:00+00:00"),  # DRF's own kind of token
    ],
)
@pytest.mark.parametrize("route", ["exports", "jobs"])
def test_a_tampered_newest_first_cursor_is_a_404_with_the_reason(project, manager, route, cursor):
    response = token_client(manager).get(f"{V}/projects/{project.pk}/{route}/", {"cursor": cursor})
    assert response.status_code == 404, response.content[:300]
    assert response.json() == {"error": INVALID_CURSOR}


@pytest.mark.parametrize("position", ["abc", "-1", "1.5", "9" * 19, "9" * 100, "1e3", " 1", "0x10", "NaN"])
def test_a_tampered_id_cursor_is_a_404_with_the_reason(project, manager, position):
    review_helpers.add_images(project, 2)
    cursor = cursor_of(p=position)
    response = token_client(manager).get(f"{V}/projects/{project.pk}/images/", {"cursor": cursor})
    assert response.status_code == 404, response.content[:300]
    assert response.json() == {"error": INVALID_CURSOR}


def test_a_cursor_from_a_link_survives_the_round_trip(project, manager, small_pages):
    ids = add_exports(project, manager, 3)
    body = token_client(manager).get(f"{V}/projects/{project.pk}/exports/").json()
    (token,) = parse_qs(urlsplit(body["next"]).query)["cursor"]
    fields = parse_qs(b64decode(token).decode())
    boundary = Export.objects.get(pk=body["results"][-1]["id"])
    assert fields["i"] == [str(boundary.pk)]
    assert int(fields["t"][0]) == (boundary.created_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    assert ids[0] in [row["id"] for row in token_client(manager).get(body["next"]).json()["results"]]
