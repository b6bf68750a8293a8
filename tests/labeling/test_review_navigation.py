"""The review page's navigation on the server: "image k of n", the filmstrip's window, jump by
name (and its index), "peek next" (read only) and the claim that confirms it, "previous" on the
first image, the skipped queue, and opening a done image (quality control): who may do what,
bad input, and a constant number of queries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import Image, Membership
from labeling.selectors import navigation
from labeling.services import review
from tests.labeling.api_helpers import snapshot
from tests.labeling.review_helpers import add_annotation, add_images, call, member

pytestmark = pytest.mark.django_db


def api(name: str, **kwargs) -> str:
    return reverse(name, kwargs=kwargs)


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="review-data" type="application/json">') + len(
        '<script id="review-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


@pytest.fixture
def bob(project):
    return member(project, "bob")


# "Image k of n" ---------------------------------------------------------------------------------


def test_image_k_of_n_counts_the_finished_images_plus_one_and_advances_with_a_submit(
    project, annotator, client_for
):
    images = add_images(project, 4)
    add_images(project, 1, status=Image.Status.DONE, start=10)
    add_images(project, 1, status=Image.Status.SKIPPED, start=20)
    client = client_for(annotator)
    first = images[0]
    response = client.get(api("image-review", image_id=first.pk))
    assert page_data(response)["progress"] == {"k": 3, "n": 6, "done": 1, "skipped": 1}
    assert "Image 3 of 6" in response.content.decode()

    review.image_lease_claim(image=first, user=annotator, can_manage=False)
    review.image_submit(image=first, user=annotator)
    response = client.get(api("image-review", image_id=images[1].pk))
    assert page_data(response)["progress"]["k"] == 4
    assert "Image 4 of 6" in response.content.decode()
    # A done image has no place in the queue: the page shows the figures instead.
    response = client.get(api("image-review", image_id=first.pk))
    assert page_data(response)["progress"]["k"] is None
    assert "2 of 6 done" in response.content.decode()


def test_the_review_page_makes_as_many_queries_for_a_large_project_as_for_a_small_one(
    project, annotator, client_for
):
    client = client_for(annotator)
    small = add_images(project, 2)[0]
    with CaptureQueriesContext(connection) as few:
        assert client.get(api("image-review", image_id=small.pk)).status_code == 200
    add_images(project, 200, start=100)
    with CaptureQueriesContext(connection) as many:
        assert client.get(api("image-review", image_id=small.pk)).status_code == 200
    assert len(many) == len(few)


# The filmstrip ----------------------------------------------------------------------------------


def test_the_filmstrip_is_a_window_around_the_image_with_more_on_either_side(project, annotator, client_for):
    images = add_images(project, 30)
    ids = [i.pk for i in images]
    client = client_for(annotator)
    url = api("api-project-filmstrip", project_id=project.pk)
    around = client.get(url, {"around": ids[10], "limit": 5}).json()
    assert [i["id"] for i in around["images"]] == ids[5:15]
    assert around["more_before"] is True and around["more_after"] is True
    tile = around["images"][5]
    assert tile["review_url"] == api("image-review", image_id=ids[10])
    assert tile["thumbnail"] == api("image-thumbnail", image_id=ids[10])
    assert (tile["name"], tile["status"], tile["in_review"]) == ("img-0010.png", "prelabeled", False)

    earlier = client.get(url, {"before": ids[5], "limit": 5}).json()
    assert [i["id"] for i in earlier["images"]] == ids[0:5]
    assert earlier["more_before"] is False and earlier["more_after"] is None
    later = client.get(url, {"after": ids[14], "limit": 20}).json()
    assert [i["id"] for i in later["images"]] == ids[15:]
    assert later["more_after"] is False
    first_page = client.get(url).json()  # no position: from the first image on
    assert [i["id"] for i in first_page["images"]] == ids[:20]


def test_the_filmstrip_shows_who_is_reviewing_and_reads_a_window_not_the_project(
    project, annotator, bob, client_for
):
    images = add_images(project, 3)
    review.image_lease_claim(image=images[1], user=bob, can_manage=False)
    client = client_for(annotator)
    url = api("api-project-filmstrip", project_id=project.pk)
    shown = client.get(url, {"around": images[1].pk}).json()["images"]
    assert [i["in_review"] for i in shown] == [False, True, False]
    with CaptureQueriesContext(connection) as few:
        client.get(url, {"around": images[1].pk})
    add_images(project, 300, start=100)
    with CaptureQueriesContext(connection) as many:
        client.get(url, {"around": images[1].pk})
    assert len(many) == len(few)
    window_sql = [
        q["sql"] for q in many.captured_queries if '"labeling_image"' in q["sql"] and "LIMIT" in q["sql"]
    ]
    assert len(window_sql) == 2, "one bounded range read on each side"


@pytest.mark.parametrize(
    "query",
    [
        {"around": "x"},
        {"around": "0"},
        {"around": "1", "after": "2"},
        {"limit": "0"},
        {"limit": "51"},
        {"around": str(2**70)},
        {"sort": "name"},
    ],
)
def test_the_filmstrip_refuses_bad_input_with_a_reason(project, annotator, client_for, query):
    response = client_for(annotator).get(api("api-project-filmstrip", project_id=project.pk), query)
    assert response.status_code == 400
    assert response.json()["error"]


def test_outsiders_get_404_from_every_navigation_endpoint(project, outsider, client_for):
    (image,) = add_images(project, 1)
    client = client_for(outsider)
    before = snapshot()
    for url, query in [
        (api("api-project-filmstrip", project_id=project.pk), {}),
        (api("api-project-image-names", project_id=project.pk), {"prefix": "img"}),
        (api("api-image-peek-next", image_id=image.pk), {}),
        (api("api-image-previous", image_id=image.pk), {}),
    ]:
        assert client.get(url, query).status_code == 404, url
    assert call(client, "POST", api("api-image-lease", image_id=image.pk), {"version": 1}).status_code == 404
    assert client.get(api("image-review", image_id=image.pk)).status_code == 404
    assert client.post(api("review-next", project_id=project.pk) + "?status=skipped").status_code == 404
    assert snapshot() == before


# Jump by name -----------------------------------------------------------------------------------


def name_images(project, names: list[str]) -> list[Image]:
    images = add_images(project, len(names), start=500)
    for image, name in zip(images, names, strict=True):
        image.original_name = name
    Image.objects.bulk_update(images, ["original_name"])
    return images


def test_jump_by_name_finds_the_images_whose_name_starts_with_the_prefix_by_name(
    project, annotator, client_for
):
    name_images(
        project, ["zebra.jpg", "cat_2.jpg", "cat-1.jpg", "Cat.jpg", "cat%.jpg", "dog.jpg", "caterpillar.png"]
    )
    client = client_for(annotator)
    url = api("api-project-image-names", project_id=project.pk)
    names = [i["name"] for i in client.get(url, {"prefix": "cat"}).json()["images"]]
    assert names == ["cat%.jpg", "cat-1.jpg", "cat_2.jpg", "caterpillar.png"]  # code point order, as typed
    # % and _ are letters here, not wildcards.
    assert [i["name"] for i in client.get(url, {"prefix": "cat_"}).json()["images"]] == ["cat_2.jpg"]
    assert [i["name"] for i in client.get(url, {"prefix": "cat%"}).json()["images"]] == ["cat%.jpg"]
    assert client.get(url, {"prefix": "cat", "limit": 2}).json()["images"][1]["name"] == "cat-1.jpg"
    assert client.get(url, {"prefix": "nothing"}).json() == {"images": []}
    assert client.get(url, {"prefix": ""}).json() == {"images": []}, "an empty field finds nothing"
    assert client.get(url).json() == {"images": []}
    found = client.get(url, {"prefix": "zeb"}).json()["images"][0]
    assert found["review_url"].startswith("/images/")


def test_jump_by_name_handles_the_last_code_point(project, annotator, client_for):
    name_images(project, ["a\U0010ffff.png", "a\U0010ffffb.png", "b.png"])
    url = api("api-project-image-names", project_id=project.pk)
    found = client_for(annotator).get(url, {"prefix": "a\U0010ffff"}).json()["images"]
    assert [i["name"] for i in found] == ["a\U0010ffff.png", "a\U0010ffffb.png"]


@pytest.mark.parametrize(
    "query",
    [
        {"prefix": "x" * 256},
        {"prefix": "a\x00"},
        {"prefix": "a", "limit": "21"},
        {"prefix": "a", "limit": "0"},
    ],
)
def test_jump_by_name_refuses_bad_input_with_a_reason(project, annotator, client_for, query):
    response = client_for(annotator).get(api("api-project-image-names", project_id=project.pk), query)
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans are PostgreSQL's")
def test_jump_by_name_reads_the_name_index_not_the_whole_table(project):
    Image.objects.bulk_create(
        Image(
            project=project,
            file=f"x/{n}.png",
            sha256=f"{n:064x}",
            width=8,
            height=8,
            original_name=f"photo-{n:05d}.jpg",
        )
        for n in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_image")
    with CaptureQueriesContext(connection) as captured:
        found = navigation.images_by_name(project=project, prefix="photo-0421")
    assert [i["name"] for i in found] == [f"photo-0421{d}.jpg" for d in range(10)]
    (sql,) = [q["sql"] for q in captured.captured_queries if '"labeling_image"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        raw = cursor.fetchone()[0]
    plan = json.dumps(json.loads(raw) if isinstance(raw, str) else raw)
    assert navigation.NAME_INDEX in plan
    assert '"Seq Scan"' not in plan
    assert '"Sort"' not in plan  # the index gives the order


# Peek next and the claim that confirms it --------------------------------------------------------


def lease_rows(project) -> list[tuple]:
    return list(project.images.order_by("id").values_list("id", "assignee_id", "lease_expires_at", "version"))


def test_peek_next_names_what_the_queue_would_hand_out_and_writes_nothing(
    project, annotator, bob, client_for
):
    new = add_images(project, 1, status=Image.Status.NEW, start=50)[0]
    current, held_by_bob, following = add_images(project, 3)
    review.image_lease_claim(image=held_by_bob, user=bob, can_manage=False)
    review.image_lease_claim(image=current, user=annotator, can_manage=False)
    add_annotation(following)
    client = client_for(annotator)
    before = lease_rows(project)
    answer = client.get(api("api-image-peek-next", image_id=current.pk)).json()["next"]
    assert lease_rows(project) == before, "a peek leases nothing"
    assert answer["id"] == following.pk
    assert answer["version"] == following.version
    assert answer["review_url"] == api("image-review", image_id=following.pk)
    assert [a["id"] for a in answer["data"]["annotations"]] == list(
        following.annotations.values_list("pk", flat=True)
    )
    assert answer["data"]["urls"]["lease"] == api("api-image-lease", image_id=following.pk)
    # The queue agrees once the current image is submitted.
    review.image_submit(image=current, user=annotator)
    assert review.image_lease_next(project=project, user=annotator) == following.pk
    # Then the new images; then nothing.
    assert client.get(api("api-image-peek-next", image_id=following.pk)).json()["next"]["id"] == new.pk
    review.image_submit(image=following, user=annotator)
    Image.objects.filter(pk=new.pk).update(status=Image.Status.DONE)
    assert client.get(api("api-image-peek-next", image_id=following.pk)).json() == {"next": None}


def test_peek_next_makes_as_many_queries_for_many_annotations_and_images(project, annotator, client_for):
    current, following = add_images(project, 2)
    client = client_for(annotator)
    url = api("api-image-peek-next", image_id=current.pk)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for _ in range(30):
        add_annotation(following)
    add_images(project, 100, start=100)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_peek_next_refuses_an_unknown_queue(project, annotator, client_for):
    (image,) = add_images(project, 1)
    response = client_for(annotator).get(api("api-image-peek-next", image_id=image.pk), {"queue": "done"})
    assert response.status_code == 400
    assert response.json()["error"]


def test_a_claim_with_the_peeked_version_answers_only_the_lease(project, annotator, client_for):
    current, following = add_images(project, 2)
    client = client_for(annotator)
    peeked = client.get(api("api-image-peek-next", image_id=current.pk)).json()["next"]
    answer = call(
        client, "POST", api("api-image-lease", image_id=following.pk), {"version": peeked["version"]}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["unchanged"] is True and "annotations" not in body
    assert body["lease_seconds"] > 0
    following.refresh_from_db()
    assert following.assignee_id == annotator.pk


def test_a_claim_after_the_image_changed_answers_the_fresh_data(project, annotator, client_for):
    current, following = add_images(project, 2)
    client = client_for(annotator)
    peeked = client.get(api("api-image-peek-next", image_id=current.pk)).json()["next"]
    Image.objects.filter(pk=following.pk).update(version=peeked["version"] + 1)  # e.g. pre-labeled again
    add_annotation(following)
    body = call(
        client, "POST", api("api-image-lease", image_id=following.pk), {"version": peeked["version"]}
    ).json()
    assert "unchanged" not in body
    assert body["image"]["version"] == peeked["version"] + 1
    assert len(body["annotations"]) == 1


def test_a_claim_of_a_peeked_image_someone_took_meanwhile_is_409(project, annotator, bob, client_for):
    current, following = add_images(project, 2)
    client = client_for(annotator)
    peeked = client.get(api("api-image-peek-next", image_id=current.pk)).json()["next"]
    review.image_lease_next(project=project, user=bob)  # bob takes the first free one
    following.refresh_from_db()
    taken = following if following.assignee_id == bob.pk else current
    answer = call(client, "POST", api("api-image-lease", image_id=taken.pk), {"version": peeked["version"]})
    assert answer.status_code == 409
    assert answer.json()["held_by"] == "bob"


@pytest.mark.parametrize("body", [{"version": 0}, {"version": "1"}, {"version": True}, {"other": 1}, [1]])
def test_a_claim_refuses_bad_input(project, annotator, client_for, body):
    (image,) = add_images(project, 1)
    answer = call(client_for(annotator), "POST", api("api-image-lease", image_id=image.pk), body)
    assert answer.status_code == 400
    assert answer.json()["error"]
    image.refresh_from_db()
    assert image.assignee_id is None


# Previous ---------------------------------------------------------------------------------------


def test_previous_on_the_first_image_is_null_and_else_the_image_before(project, annotator, client_for):
    first, second = add_images(project, 2)
    client = client_for(annotator)
    assert client.get(api("api-image-previous", image_id=first.pk)).json() == {"previous": None}
    assert client.get(api("api-image-previous", image_id=second.pk)).json() == {
        "previous": {"id": first.pk, "review_url": api("image-review", image_id=first.pk)}
    }


# The skipped queue ------------------------------------------------------------------------------


def test_the_skipped_queue_hands_out_skipped_images_after_the_last_one_seen(project, annotator, client_for):
    add_images(project, 1)  # still to review: the usual queue's, not this one's
    first, second = add_images(project, 2, status=Image.Status.SKIPPED, start=10)
    client = client_for(annotator)
    queue = api("review-next", project_id=project.pk)
    response = client.post(queue + "?status=skipped")
    assert response.status_code == 303
    assert response["Location"] == api("image-review", image_id=first.pk) + "?queue=skipped"
    page = page_data(client.get(response["Location"]))
    assert page["queue"] == "skipped"
    assert page["urls"]["next"] == f"{queue}?status=skipped&after={first.pk}"
    # Skipped again: the queue goes on after it.
    review.image_skip(image=first, user=annotator)
    response = client.post(page["urls"]["next"])
    assert response["Location"] == api("image-review", image_id=second.pk) + "?queue=skipped"
    peek = client.get(api("api-image-peek-next", image_id=first.pk), {"queue": "skipped"}).json()["next"]
    assert peek["id"] == second.pk and peek["review_url"].endswith("?queue=skipped")
    # None left after the last one: back to the queue page, which says so.
    response = client.post(f"{queue}?status=skipped&after={second.pk}")
    assert response["Location"] == f"{queue}?status=skipped"
    assert "No skipped image left" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize("query", ["?status=done", "?status=skipped&after=x", "?status=skipped&after=0"])
def test_the_queue_refuses_a_bad_query(project, annotator, client_for, query):
    add_images(project, 1, status=Image.Status.SKIPPED)
    before = snapshot()
    response = client_for(annotator).post(api("review-next", project_id=project.pk) + query)
    assert response.status_code == 400
    assert snapshot() == before


def test_the_review_page_refuses_an_unknown_queue(project, annotator, client_for):
    (image,) = add_images(project, 1)
    assert client_for(annotator).get(api("image-review", image_id=image.pk) + "?queue=all").status_code == 400


# Quality control: a done image ------------------------------------------------------------------


def test_a_manager_reopens_a_done_image_and_it_stays_done_until_submitted_again(project, manager, annotator):
    (image,) = add_images(
        project, 1, status=Image.Status.DONE, reviewed_by=annotator, reviewed_at=timezone.now()
    )
    data = review.image_lease_claim(image=image, user=manager, can_manage=True)
    assert data["image"]["status"] == Image.Status.DONE
    image.refresh_from_db()
    assert (image.assignee_id, image.status) == (manager.pk, Image.Status.DONE)
    review.image_submit(image=image, user=manager)
    image.refresh_from_db()
    assert (image.status, image.reviewed_by_id, image.assignee_id) == (Image.Status.DONE, manager.pk, None)


def test_an_annotator_may_reopen_only_the_done_images_they_reviewed(project, annotator, bob, client_for):
    now = timezone.now()
    (theirs,) = add_images(project, 1, status=Image.Status.DONE, reviewed_by=annotator, reviewed_at=now)
    (others,) = add_images(project, 1, status=Image.Status.DONE, reviewed_by=bob, reviewed_at=now, start=5)
    client = client_for(annotator)
    assert call(client, "POST", api("api-image-lease", image_id=theirs.pk), {}).status_code == 200
    refused = call(client, "POST", api("api-image-lease", image_id=others.pk), {})
    assert refused.status_code == 403
    assert "managers" in refused.json()["error"]
    others.refresh_from_db()
    assert others.assignee_id is None
    # They can still look at it.
    assert client.get(api("image-review", image_id=others.pk)).status_code == 200


def test_a_done_image_held_by_a_manager_is_read_only_for_another_manager(project, manager, client_for):
    other_manager = member(project, "mona", role=Membership.Role.MANAGER)
    (image,) = add_images(project, 1, status=Image.Status.DONE)
    review.image_lease_claim(image=image, user=manager, can_manage=True)
    client = client_for(other_manager)
    page = page_data(client.get(api("image-review", image_id=image.pk)))
    assert page["held_by_other"] == manager.username
    answer = call(client, "POST", api("api-image-lease", image_id=image.pk), {})
    assert answer.status_code == 409 and answer.json()["held_by"] == manager.username
    image.refresh_from_db()
    assert image.lease_expires_at > timezone.now() + timedelta(minutes=1)


# The project page's grid -------------------------------------------------------------------------


def test_the_grid_opens_an_image_in_the_review_editor_and_keeps_a_link_to_the_file(
    project, manager, client_for
):
    (image,) = add_images(project, 1, status=Image.Status.DONE)
    html = client_for(manager).get(project.get_absolute_url()).content.decode()
    assert f'href="{api("image-review", image_id=image.pk)}" class="tile-open"' in html
    assert f'href="{api("image-file", image_id=image.pk)}"' in html


def test_peek_next_gives_the_progress_the_next_image_will_have_once_this_one_is_submitted(
    project, annotator, client_for
):
    current, following, _ = add_images(project, 3)
    review.image_lease_claim(image=current, user=annotator, can_manage=False)
    client = client_for(annotator)
    peeked = client.get(api("api-image-peek-next", image_id=current.pk)).json()["next"]["data"]["progress"]
    review.image_submit(image=current, user=annotator)
    following.refresh_from_db()
    # k, what the header shows for an image in the queue (done and skipped are as at the peek).
    assert peeked["k"] == navigation.review_progress(image=following)["k"] == 2
    assert peeked["n"] == 3
