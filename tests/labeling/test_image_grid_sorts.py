"""The project page's image grid sorted and searched (issue 14): by date added, name, status and
number of annotations, each either way, and by a prefix of the original name as typed; the keyset
cursor holds (the sort's value, id), so a walk forward or back sees every matching image exactly
once with ties broken by id; the sort and search stay in every link and in the reload that
`images-changed` asks for; bad values never make an error page; and a page costs the same queries
at 60 and 300 images whatever the sort."""

from __future__ import annotations

import html
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.forms import parse_cursor
from labeling.models import Annotation, Image
from labeling.selectors.images import SORTS, image_page
from labeling.views import projects as project_views
from tests.labeling.review_helpers import add_images
from tests.labeling.test_image_grid_pages import HTMX, RELOADER, grid_url, pager, tile_ids, walk

pytestmark = pytest.mark.django_db

# Names with ties, cases, and the characters LIKE would treat as wildcards.
NAMES = ["b.png", "a.png", "B.png", "a.png", "a_1.png", "a%1.png", "ab.png", "b.png", "Ä.png", "a.png"]


@pytest.fixture
def pages_of_4(monkeypatch):
    monkeypatch.setattr(project_views, "IMAGES_PER_PAGE", 4)


@pytest.fixture
def grid_client(client_for, annotator):
    return client_for(annotator)


def mixed_images(project, n: int = 23, seed: int = 5) -> list[Image]:
    """n images with repeated names, statuses and annotation counts (ties for every sort)."""
    rng = random.Random(seed)
    images = add_images(project, n, status=Image.Status.NEW)
    label = project.classes.first()
    rows = []
    for index, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(
            original_name=NAMES[index % len(NAMES)], status=rng.choice(Image.Status.values)
        )
        rows += [
            Annotation(
                image=image, label_class=label, x=0, y=0, w=1, h=1, state=rng.choice(Annotation.State.values)
            )
            for _ in range(rng.choice([0, 0, 1, 2, 2, 5]))
        ]
    Annotation.objects.bulk_create(rows)
    return list(Image.objects.filter(project=project).order_by("id"))


def expected(images: list[Image], sort: str, *, status: str = "", search: str = "") -> list[int]:
    """The order the grid must show, computed here: the sort's value, then the id, either way."""
    key = sort.lstrip("-")
    value = {
        "added": lambda im: (),
        "name": lambda im: (im.original_name,),  # code point order, as the "C" collation
        "status": lambda im: (im.status,),
        "annotations": lambda im: (im.annotation_count,),
    }[key]
    chosen = [
        im for im in images if (not status or im.status == status) and im.original_name.startswith(search)
    ]
    ordered = sorted(chosen, key=lambda im: (*value(im), im.pk), reverse=sort.startswith("-"))
    return [im.pk for im in ordered]


def query(**params) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items() if v)


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_walks_forward_and_back_seeing_each_image_once(grid_client, project, pages_of_4, sort):
    images = mixed_images(project)
    assert sorted(im.annotation_count for im in images)[-1] >= 2  # the counts are the triggers'
    want = expected(images, sort)

    forward = walk(grid_client, grid_url(project, query(sort=sort)), "next")
    assert [i for page in forward for i in page] == want
    assert all(len(page) == 4 for page in forward[:-1])

    first = grid_client.get(grid_url(project, query(sort=sort)), **HTMX)
    backward = walk(grid_client, pager(first)["last"]["grid"], "prev")
    assert [i for page in reversed(backward) for i in page] == want
    assert backward[0] == want[-4:]  # the last page is full


@pytest.mark.parametrize("sort", ["name", "-name", "annotations", "-status"])
@pytest.mark.parametrize("search", ["a", "a.", "a_", "a%", "B", "Ä", "zzz"])
def test_a_search_is_a_name_prefix_as_typed_paged_by_name(grid_client, project, pages_of_4, sort, search):
    images = mixed_images(project)
    used = sort if sort in ("name", "-name") else "name"  # a search pages by name
    want = expected(images, used, search=search)
    forward = walk(grid_client, grid_url(project, query(sort=sort, q=search)), "next")
    assert [i for page in forward for i in page] == want
    if want:
        first = grid_client.get(grid_url(project, query(sort=sort, q=search)), **HTMX)
        if "last" in pager(first):
            backward = walk(grid_client, pager(first)["last"]["grid"], "prev")
            assert [i for page in reversed(backward) for i in page] == want


@pytest.mark.parametrize("sort", ["-annotations", "name", "status"])
def test_a_status_filter_with_a_sort_and_a_search(grid_client, project, pages_of_4, sort):
    images = mixed_images(project, n=40)
    for status in Image.Status.values:
        want = expected(images, sort, status=status)
        walked = walk(grid_client, grid_url(project, query(status=status, sort=sort)), "next")
        assert [i for page in walked for i in page] == want
    searched = walk(grid_client, grid_url(project, query(status="new", sort="-name", q="a")), "next")
    assert [i for page in searched for i in page] == expected(images, "-name", status="new", search="a")


def test_the_links_and_the_reload_keep_the_status_sort_search_and_page(grid_client, project, pages_of_4):
    images = mixed_images(project, n=40)
    want = expected(images, "-name", search="a")
    url = grid_url(project, "sort=-name&q=a")
    second_url = pager(grid_client.get(url, **HTMX))["next"]["grid"]
    second = grid_client.get(second_url, **HTMX)
    assert tile_ids(second) == want[4:8]
    content = second.content.decode()
    # The reload that "images-changed" asks for is this very page.
    reload_url = html.unescape(RELOADER.search(content)["grid"])
    assert reload_url == second_url
    assert tile_ids(grid_client.get(reload_url, **HTMX)) == want[4:8]
    # Every pager link keeps the sort and the search; the pushed URL reloads the same tiles.
    for link in pager(second).values():
        assert "sort=-name" in link["href"] and "q=a" in link["href"]
        assert link["grid"].endswith(link["href"].split("?", 1)[1])
    whole = grid_client.get(pager(second)["next"]["href"])
    assert tile_ids(whole) == want[8:12]
    # The status tabs keep the sort and the search (and start at the first page).
    detail = project.get_absolute_url()
    assert f'href="{detail}?status=done&amp;sort=-name&amp;q=a"' in content
    assert f'href="{detail}?sort=-name&amp;q=a"' in content


def test_the_sort_form_pushes_the_page_url(grid_client, project, pages_of_4):
    mixed_images(project)
    form = {"HTTP_HX_TRIGGER": "grid-view", **HTMX}
    response = grid_client.get(grid_url(project, "sort=annotations&q="), **form)
    assert response["HX-Push-Url"] == project.get_absolute_url() + "?sort=annotations"
    response = grid_client.get(grid_url(project, "status=new&sort=-added&q=a%25"), **form)
    # (a search pages by name: the URL says so)
    assert response["HX-Push-Url"] == project.get_absolute_url() + "?status=new&sort=name&q=a%25"
    # The links push their own URL (hx-push-url), not the view.
    assert "HX-Push-Url" not in grid_client.get(grid_url(project, "sort=name"), **HTMX)


@pytest.mark.parametrize(
    "params",
    [
        "sort=bogus",
        "sort=--name",
        "sort=name&after=abc",
        "sort=name&after=12",  # a cursor of another sort (no value)
        "sort=annotations&after=3:many",
        "sort=annotations&after=3:-1",
        "sort=annotations&before=3:" + "9" * 40,
        "sort=status&after=3:finished",
        "sort=added&after=3:x",
        "sort=name&before=" + "9" * 30 + ":a",
        "q=" + "a" * 300,
        "q=%00",
        "q=a%00b&sort=name&after=1:a%00",
        "sort=name&after=1:" + "x" * 400,
        "sort=%ff%fe&q=a",
    ],
)
def test_bad_sort_search_or_cursor_values_show_the_first_page(grid_client, project, pages_of_4, params):
    images = mixed_images(project)
    response = grid_client.get(f"{grid_url(project)}?{params}", **HTMX)
    assert response.status_code == 200
    assert len(tile_ids(response)) == 4
    whole = grid_client.get(f"{project.get_absolute_url()}?{params}")
    assert whole.status_code == 200
    assert tile_ids(whole) == tile_ids(response)
    if params.startswith(("sort=bogus", "q=a" + "a")):
        assert 'class="error grid-problem"' in response.content.decode()
        assert tile_ids(response) == expected(images, "added")[:4]


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **HTMX)
    assert response.status_code == 200
    assert len(tile_ids(response)) == project_views.IMAGES_PER_PAGE
    return len(captured.captured_queries)


def test_every_sort_costs_the_same_queries_at_60_and_300_images(grid_client, project, monkeypatch):
    monkeypatch.setattr(project_views, "IMAGES_PER_PAGE", 10)

    def costs() -> dict[str, int]:
        found = {}
        for sort in SORTS:
            first = grid_client.get(grid_url(project, query(sort=sort)), **HTMX)
            links = pager(first)
            second = links["next"]["grid"]
            found[f"{sort} first"] = count_queries(grid_client, grid_url(project, query(sort=sort)))
            found[f"{sort} next"] = count_queries(grid_client, second)
            found[f"{sort} prev"] = count_queries(
                grid_client, pager(grid_client.get(second, **HTMX))["prev"]["grid"]
            )
            found[f"{sort} last"] = count_queries(grid_client, links["last"]["grid"])
        found["search"] = count_queries(grid_client, grid_url(project, "q=a"))
        return found

    mixed_images(project, n=60)
    at_60 = costs()
    add_images(project, 240, start=1000, status=Image.Status.DONE)
    Image.objects.filter(project=project, original_name__startswith="img-").update(original_name="a-more.png")
    at_300 = costs()
    assert at_60 == at_300


def test_the_selector_pages_by_sort_value_then_id_in_two_queries(project, django_assert_num_queries):
    images = mixed_images(project)
    want = expected(images, "-annotations")
    with django_assert_num_queries(2) as captured:
        page = image_page(project=project, size=5, sort="-annotations")
    assert [im.pk for im in page.images] == want[:5]
    ids_query, rows_query = (q["sql"] for q in captured.captured_queries)
    assert "LIMIT 6" in ids_query and "OFFSET" not in ids_query.upper() and "COUNT(" not in ids_query.upper()
    assert "labeling_annotation" not in rows_query  # the counts are the image's columns
    boundary = page.images[-1]
    assert page.last == f"{boundary.pk}:{boundary.annotation_count}"
    with django_assert_num_queries(2):
        following = image_page(
            project=project, size=5, sort="-annotations", after=parse_cursor(page.last, "-annotations")
        )
    assert [im.pk for im in following.images] == want[5:10]


def test_the_grid_url_names_the_delete_and_the_sort_choices(grid_client, project):
    mixed_images(project, n=3)
    content = grid_client.get(grid_url(project, "sort=-annotations"), **HTMX).content.decode()
    assert '<option value="-annotations" selected>' in content
    assert reverse("project-images-delete", kwargs={"project_id": project.pk}) not in content  # annotators
