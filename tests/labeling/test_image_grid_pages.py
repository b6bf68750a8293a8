"""The project page's image grid pages by keyset (issue 12): First / Previous / Next / Last links
with the cursor in the URL (?after=<id>, ?before=<id>, ?last=1) and the status filter kept; the
page's ids are read first, then those images alone with their per-tile counts, so the last page
costs the queries the first does."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import Annotation, Image
from labeling.selectors.images import image_page
from labeling.services.projects import project_create
from labeling.views import projects as project_views
from tests.labeling.review_helpers import add_annotation, add_images

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGER_LINK = re.compile(
    r'<a href="(?P<href>[^"]+)" rel="(?P<rel>\w+)" hx-get="(?P<grid>[^"]+)" hx-target="#images" '
    r'hx-push-url="(?P<push>[^"]+)">'
)
TILE = re.compile(r'<div class="muted small tile-counts" data-id="(\d+)">')
RELOADER = re.compile(r'<div hidden hx-get="(?P<grid>[^"]+)" hx-trigger="images-changed from:body"')


@pytest.fixture
def pages_of_5(monkeypatch):
    monkeypatch.setattr(project_views, "IMAGES_PER_PAGE", 5)


def grid_url(project, query: str = "") -> str:
    url = reverse("project-images", kwargs={"project_id": project.pk})
    return f"{url}?{query}" if query else url


def tile_ids(response) -> list[int]:
    return [int(i) for i in TILE.findall(response.content.decode())]


def pager(response) -> dict[str, dict[str, str]]:
    """The pager's live links by rel (first, prev, next, last): href, grid (hx-get), push."""
    links = {}
    for match in PAGER_LINK.finditer(response.content.decode()):
        link = {k: html.unescape(v) for k, v in match.groupdict().items()}
        assert link["push"] == link["href"]  # the pushed URL is the page's own
        links[link.pop("rel")] = link
    return links


def walk(client, url: str, rel: str) -> list[list[int]]:
    """Follow the pager's `rel` links from the grid at url to the end: each page's image ids."""
    pages = []
    while url:
        response = client.get(url, **HTMX)
        assert response.status_code == 200
        pages.append(tile_ids(response))
        assert len(pages) < 100, "the walk does not end"
        url = pager(response).get(rel, {}).get("grid")
    return pages


@pytest.fixture
def grid_client(client_for, annotator):
    return client_for(annotator)


def test_the_grid_walks_forward_and_back_seeing_every_image_once(grid_client, project, pages_of_5):
    ids = [image.pk for image in add_images(project, 17, status=Image.Status.NEW)]

    forward = walk(grid_client, grid_url(project), "next")
    assert [len(page) for page in forward] == [5, 5, 5, 2]
    assert [i for page in forward for i in page] == ids  # each once, in id order

    last = grid_client.get(grid_url(project), **HTMX)
    backward = walk(grid_client, pager(last)["last"]["grid"], "prev")
    # The last page is full (the reversed order, shown ascending); the walk back ends on a short one.
    assert backward == [ids[12:17], ids[7:12], ids[2:7], ids[0:2]]
    assert sorted(i for page in backward for i in page) == ids


def test_the_pager_links_name_the_cursor_and_keep_the_status(grid_client, project, pages_of_5):
    add_images(project, 3, status=Image.Status.NEW)
    done = [image.pk for image in add_images(project, 12, start=100, status=Image.Status.DONE)]
    add_images(project, 3, start=200, status=Image.Status.NEW)
    detail = project.get_absolute_url()

    first = grid_client.get(grid_url(project, "status=done"), **HTMX)
    assert tile_ids(first) == done[:5]
    links = pager(first)
    assert set(links) == {"next", "last"}  # no way back from the first page
    assert links["next"]["href"] == f"{detail}?status=done&after={done[4]}"
    assert links["next"]["grid"] == grid_url(project, f"status=done&after={done[4]}")
    assert links["last"]["href"] == f"{detail}?status=done&last=1"

    second = grid_client.get(links["next"]["grid"], **HTMX)
    assert tile_ids(second) == done[5:10]
    links = pager(second)
    assert links["first"]["href"] == f"{detail}?status=done"
    assert links["prev"]["href"] == f"{detail}?status=done&before={done[5]}"
    assert links["next"]["href"] == f"{detail}?status=done&after={done[9]}"

    last = grid_client.get(links["last"]["grid"], **HTMX)
    assert tile_ids(last) == done[7:12]  # the last five done images, in ascending order
    assert set(pager(last)) == {"first", "prev"}

    walked = walk(grid_client, grid_url(project, "status=done"), "next")
    assert [i for page in walked for i in page] == done
    back = walk(grid_client, grid_url(project, "status=done&last=1"), "prev")
    assert sorted(i for page in back for i in page) == done
    assert len({i for page in back for i in page}) == len(done)


def test_the_pushed_url_reloads_the_same_page(grid_client, project, pages_of_5):
    add_images(project, 12, status=Image.Status.NEW)
    next_link = pager(grid_client.get(grid_url(project), **HTMX))["next"]
    second = grid_client.get(next_link["grid"], **HTMX)
    # A reload (or the back button) asks for the pushed URL: the whole page with the same tiles.
    whole = grid_client.get(next_link["href"])
    assert whole.status_code == 200
    assert b"<html" in whole.content
    assert tile_ids(whole) == tile_ids(second) != []
    assert pager(whole) == pager(second)


def test_the_grid_reloads_its_own_page_when_images_change(grid_client, project, pages_of_5):
    """A job's polling sends "images-changed": the grid reloads the page it shows, not the first."""
    ids = [image.pk for image in add_images(project, 12, status=Image.Status.PRELABELED)]
    second = grid_client.get(grid_url(project, f"status=prelabeled&after={ids[4]}"), **HTMX)
    reload_url = html.unescape(RELOADER.search(second.content.decode())["grid"])
    assert reload_url == grid_url(project, f"status=prelabeled&after={ids[4]}")
    whole = grid_client.get(project.get_absolute_url(), {"last": "1"})
    assert html.unescape(RELOADER.search(whole.content.decode())["grid"]) == grid_url(project, "last=1")
    first = grid_client.get(grid_url(project), **HTMX)
    assert html.unescape(RELOADER.search(first.content.decode())["grid"]) == grid_url(project)


def test_rows_added_or_removed_between_requests_do_not_shift_a_page(grid_client, project, pages_of_5):
    ids = [image.pk for image in add_images(project, 12, status=Image.Status.NEW)]
    url = pager(grid_client.get(grid_url(project), **HTMX))["next"]["grid"]
    assert tile_ids(grid_client.get(url, **HTMX)) == ids[5:10]
    # An image of the first page deleted, new ones uploaded: page two holds the same images.
    Image.objects.filter(pk=ids[0]).delete()
    add_images(project, 6, start=500, status=Image.Status.NEW)
    assert tile_ids(grid_client.get(url, **HTMX)) == ids[5:10]
    # And the first page is still the first five images there are.
    assert tile_ids(grid_client.get(grid_url(project), **HTMX)) == ids[1:6]


def test_each_tile_shows_its_annotation_and_proposal_counts(grid_client, project):
    busy, quiet, single = add_images(project, 3, status=Image.Status.PRELABELED)
    states = Annotation.State
    for state in [states.PROPOSED] * 3 + [states.ACCEPTED] * 3 + [states.REJECTED]:
        add_annotation(busy, state=state)
    add_annotation(single, state=Annotation.State.ACCEPTED)
    content = grid_client.get(grid_url(project), **HTMX).content.decode()
    counts = dict(re.findall(r'<div class="muted small tile-counts" data-id="(\d+)">([^<]+)</div>', content))
    assert counts == {
        str(busy.pk): "7 annotations · 3 proposed",
        str(quiet.pk): "0 annotations · 0 proposed",
        str(single.pk): "1 annotation · 0 proposed",
    }


@pytest.mark.parametrize(
    "query",
    [
        "after=abc",
        "after=-3",
        "before=-1",
        "after=" + "9" * 30,
        "before=" + "1" * 5000,
        "after=1e400",
        "after=nan",
        "after=1&before=9",
        "after=3&last=1",
        "last=maybe",
        "status=bogus&after=zz",
    ],
)
def test_a_bad_cursor_shows_the_first_page(grid_client, project, pages_of_5, query):
    ids = [image.pk for image in add_images(project, 8, status=Image.Status.NEW)]
    response = grid_client.get(f"{grid_url(project)}?{query}", **HTMX)
    assert response.status_code == 200
    assert tile_ids(response) == ids[:5]
    whole = grid_client.get(f"{project.get_absolute_url()}?{query}")
    assert whole.status_code == 200
    assert tile_ids(whole) == ids[:5]


def test_a_cursor_past_either_end_shows_the_nearest_page(grid_client, project, pages_of_5):
    ids = [image.pk for image in add_images(project, 8, status=Image.Status.NEW)]
    assert tile_ids(grid_client.get(grid_url(project, f"after={2**63 - 1}"), **HTMX)) == ids[3:]
    assert tile_ids(grid_client.get(grid_url(project, f"after={ids[-1]}"), **HTMX)) == ids[3:]
    assert tile_ids(grid_client.get(grid_url(project, "before=0"), **HTMX)) == ids[:5]
    assert tile_ids(grid_client.get(grid_url(project, f"before={ids[0]}"), **HTMX)) == ids[:5]


def test_the_grid_never_shows_another_projects_images(grid_client, project, outsider, pages_of_5):
    other = project_create(user=outsider, name="Other", classes=[{"name": "x"}])
    mine = []
    for n in range(4):  # the two projects' ids interleave
        mine += [image.pk for image in add_images(project, 2, start=10 * n, status=Image.Status.NEW)]
        add_images(other, 2, start=10 * n + 5, status=Image.Status.NEW)
    forward = walk(grid_client, grid_url(project), "next")
    assert forward == [mine[:5], mine[5:]]
    assert walk(grid_client, grid_url(project, "last=1"), "prev") == [mine[3:], mine[:3]]


def test_the_selector_reads_the_ids_then_those_images_in_two_queries(project, django_assert_num_queries):
    ids = [image.pk for image in add_images(project, 30, status=Image.Status.NEW)]
    add_annotation(Image.objects.get(pk=ids[28]))
    with django_assert_num_queries(2) as captured:
        page = image_page(project=project, size=10, last=True)
    assert [image.pk for image in page.images] == ids[20:]
    assert (page.has_previous, page.has_next) == (True, False)
    assert page.images[8].proposal_count == 1
    ids_query, rows_query = (q["sql"] for q in captured.captured_queries)
    assert "LIMIT 11" in ids_query and "annotation" not in ids_query.lower()
    assert "IN (" in rows_query and "LIMIT" not in rows_query


def count_queries(client, url: str, **extra) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **extra)
    assert response.status_code == 200
    assert len(tile_ids(response)) == project_views.IMAGES_PER_PAGE
    return len(captured.captured_queries)


def test_the_first_and_last_pages_cost_the_same_queries_at_60_and_300_images(grid_client, project):
    def costs() -> set[tuple[str, int]]:
        ids = list(project.images.order_by("id").values_list("pk", flat=True))
        found = set()
        for query in ["", f"after={ids[0]}", f"before={ids[-1]}", "last=1"]:
            found.add(("grid", count_queries(grid_client, grid_url(project, query), **HTMX)))
            page = f"{project.get_absolute_url()}?{query}"
            found.add(("page", count_queries(grid_client, page)))
        return found

    images = add_images(project, 60, status=Image.Status.PRELABELED)
    for image in images[::7]:
        add_annotation(image)
    at_60 = costs()
    more = add_images(project, 240, start=60, status=Image.Status.PRELABELED)
    for image in more[::11]:
        add_annotation(image, state=Annotation.State.ACCEPTED)
    at_300 = costs()
    assert at_60 == at_300
    assert len(at_60) == 2  # one figure for the grid and one for the page, whatever the page
