"""The review page's data and the API routes it calls (with the session, as static/js/review.js
does): drawing, triage (accept / reject / class change), edits that keep the model's original
geometry, optimistic concurrency (If-Match, 412 with the current annotation, 428 without a
version), bulk states, thresholds."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from labeling import queues
from labeling.models import Annotation
from labeling.services import review
from tests.labeling.review_helpers import (
    HEIGHT,
    WIDTH,
    add_annotation,
    add_annotations,
    add_images,
    annotation_url,
    annotations_url,
    call,
    image_url,
    rle_of_box,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def proposal(image) -> Annotation:
    return add_annotation(image, box=(4.0, 5.0, 20.0, 10.0), mask=rle_of_box((4, 5, 20, 10)), phrase="cat")


@pytest.fixture
def api(client_for, annotator):
    """The test client, logged in as the annotator."""
    return client_for(annotator)


def review_url(image) -> str:
    return reverse("image-review", kwargs={"image_id": image.pk})


def claim_url(image) -> str:
    return reverse("api-image-lease", kwargs={"image_id": image.pk})


def stored(annotation: Annotation) -> Annotation:
    annotation.refresh_from_db()
    return annotation


# The review page ------------------------------------------------------------------------------------


def test_the_review_page_embeds_the_image_classes_and_annotations(api, project, image, proposal, task_calls):
    cat, cup = project.classes.order_by("order")
    cup.box_threshold = 0.6
    cup.save()
    response = api.get(review_url(image))
    assert response.status_code == 200
    assert response.templates[0].name == "labeling/review.html"
    assert response.context["image"] == image
    assert response.context["project"] == project
    assert (response.context["role"], response.context["can_manage"]) == ("annotator", False)
    data = response.context["review_data"]
    assert data["image"] == {
        "id": image.pk,
        "width": WIDTH,
        "height": HEIGHT,
        "url": reverse("image-file", kwargs={"image_id": image.pk}),
        "version": 1,
        "status": "prelabeled",
        "name": image.original_name,
    }
    assert data["project"] == {"id": project.pk, "name": "Kitchen", "box_threshold": 0.35}
    assert data["classes"] == [
        {"id": cat.pk, "name": "cat", "color": cat.color, "index": 1, "box_threshold": 0.35},
        {"id": cup.pk, "name": "coffee cup", "color": cup.color, "index": 2, "box_threshold": 0.6},
    ]
    assert data["annotations"] == [
        {
            "id": proposal.pk,
            "class_id": cat.pk,
            "box": [4.0, 5.0, 20.0, 10.0],
            "mask": rle_of_box((4, 5, 20, 10)),
            "polygons": None,
            "score": 0.8,
            "phrase": "cat",
            "source": "model",
            "state": "proposed",
            "version": 1,
            "edited": False,
        }
    ]
    assert data["can_manage"] is False
    assert data["held_by_other"] is None
    assert data["lease_expires_at"] is None  # the GET leases nothing: the page's claim does
    # The page embeds it for the canvas as JSON (json_script: escaped for HTML).
    assert 'id="review-data"' in response.content.decode()


def test_the_review_page_urls_lead_to_the_api(api, project, image, task_calls):
    urls = api.get(review_url(image)).context["review_data"]["urls"]
    assert urls == {
        "lease": f"/api/v1/images/{image.pk}/lease/",
        "annotations": f"/api/v1/images/{image.pk}/annotations/",
        "annotation": "/api/v1/annotations/0/",
        "bulk": f"/api/v1/images/{image.pk}/annotations/states/",
        "segment": f"/api/v1/images/{image.pk}/segment/",
        "find_more": f"/api/v1/images/{image.pk}/find-more/",
        "submit": f"/api/v1/images/{image.pk}/submit/",
        "skip": f"/api/v1/images/{image.pk}/skip/",
        "previous": f"/images/{image.pk}/previous/",
        "previous_check": f"/api/v1/images/{image.pk}/previous/",
        "peek_next": f"/api/v1/images/{image.pk}/peek-next/",
        "filmstrip": f"/api/v1/projects/{project.pk}/filmstrip/",
        "image_names": f"/api/v1/projects/{project.pk}/image-names/",
        "threshold": f"/api/v1/projects/{project.pk}/threshold/",
        "project": f"/projects/{project.pk}/",
    }
    for url in urls.values():
        resolve(url)


def test_the_claim_answers_the_page_data_with_the_lease(api, project, image, proposal, task_calls):
    page = api.get(review_url(image)).context["review_data"]
    response = call(api, "post", claim_url(image), {})
    assert response.status_code == 200
    claimed = response.json()
    image.refresh_from_db()
    assert claimed["lease_expires_at"] == image.lease_expires_at.isoformat()
    assert claimed["lease_seconds"] > 0
    leased = {"lease_expires_at", "lease_seconds"}
    page_only = {"queue", "progress"}  # the page's own: which queue it came from, "image k of n"
    assert {k: v for k, v in claimed.items() if k not in leased} == {
        k: v for k, v in page.items() if k not in leased | page_only
    }


def test_the_claim_not_the_page_queues_the_embeddings_of_this_and_the_next_images(api, project, task_calls):
    images = add_images(project, 5)
    api.get(review_url(images[1]))
    assert task_calls.calls == []
    assert call(api, "post", claim_url(images[1]), {}).status_code == 200
    assert task_calls.of(queues.EMBEDDINGS_COMPUTE) == [([i.pk for i in images[1:5]],)]


def test_the_review_page_tells_managers_they_can_save_thresholds(client_for, manager, image, task_calls):
    data = client_for(manager).get(review_url(image)).context["review_data"]
    assert data["can_manage"] is True


def review_page_queries(api, image) -> int:
    """The queries of opening the review page: its GET and its claim."""
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(review_url(image))
        claimed = call(api, "post", claim_url(image), {})
    assert (response.status_code, claimed.status_code) == (200, 200)
    return len(ctx.captured_queries)


def test_the_review_page_makes_as_many_queries_for_300_annotations_as_for_5(
    api, project, task_calls, settings
):
    # The cache in memory: the database cache's queries (which images were queued) are not the page's.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    few, many = add_images(project, 2)
    add_annotations(few, 5)
    add_annotations(many, 300)
    with_5 = review_page_queries(api, few)
    with_300 = review_page_queries(api, many)
    assert len(api.get(review_url(many)).context["review_data"]["annotations"]) == 300
    assert with_300 == with_5


# Drawing --------------------------------------------------------------------------------------------


def test_a_drawn_box_is_saved_as_an_accepted_human_annotation(api, annotator, project, image):
    cup = project.classes.get(name="coffee cup")
    response = call(api, "post", annotations_url(image), {"class_id": cup.pk, "box": [1, 2, 30.5, 20]})
    assert response.status_code == 201
    body = response.json()
    assert body["class_id"] == cup.pk
    assert body["box"] == [1.0, 2.0, 30.5, 20.0]
    assert (body["source"], body["state"], body["version"], body["edited"]) == ("human", "accepted", 1, False)
    assert (body["mask"], body["polygons"], body["score"]) == (None, None, None)
    annotation = Annotation.objects.get(pk=body["id"])
    assert annotation.created_by == annotator
    assert annotation.image == image


def test_a_mask_from_click_to_segment_is_saved_with_its_polygons(api, project, image):
    rle = rle_of_box((10, 10, 8, 6))
    polygons = [[[10, 10, 18, 10, 18, 16, 10, 16]]]
    body = {"class_id": project.classes.first().pk, "box": [10, 10, 8, 6], "mask": rle, "polygons": polygons}
    response = call(api, "post", annotations_url(image), body)
    assert response.status_code == 201
    assert response.json()["mask"] == rle
    assert stored(Annotation.objects.get(pk=response.json()["id"])).polygons == polygons


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"box": [50, 40, 20, 10]}, "past the image"),
        ({"box": [-1, 0, 5, 5]}, "outside the image"),
        ({"box": [0, 0, 0, 5]}, "positive"),
        ({"box": [0, 0, 5]}, "four numbers"),
        ({"box": [0, 0, 5, True]}, "four numbers"),
        ({"class_id": 999999}, "not a class of this project"),
        ({"class_id": "1"}, "integer"),
        ({"mask": rle_of_box((0, 0, 5, 5), width=48, height=64)}, "mask size"),
        ({"mask": {"size": [HEIGHT, WIDTH], "counts": "0"}}, "not a valid COCO RLE"),
        ({"mask": {"size": [HEIGHT, WIDTH], "counts": "\x7f\x7f"}}, "not a valid COCO RLE"),
        ({"mask": {"size": [HEIGHT, WIDTH], "counts": [10, 20]}}, "not a valid COCO RLE"),
        ({"mask": {"size": [HEIGHT, WIDTH]}}, "COCO RLE"),
        ({"polygons": [[[0, 0, 1, 1]]]}, "rings"),
        ({"polygons": [[[0, 0, 100, 0, 100, 5]]]}, "outside"),
        ({"state": "rejected"}, "Unknown field"),
        ({"color": "red"}, "Unknown field"),
    ],
)
def test_a_bad_drawing_is_refused_with_the_reason(api, project, image, change, reason):
    body = {"class_id": project.classes.first().pk, "box": [1, 1, 10, 10], **change}
    response = call(api, "post", annotations_url(image), body)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not image.annotations.exists()


def test_a_class_of_another_project_is_refused(api, manager, image):
    from labeling.services.projects import project_create

    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    body = {"class_id": other.classes.get().pk, "box": [1, 1, 10, 10]}
    assert call(api, "post", annotations_url(image), body).status_code == 400
    assert not image.annotations.exists()


@pytest.mark.parametrize(
    "body", ["{", "[1, 2]", '{"class_id": 1, "box": [NaN, 0, 1, 1]}', '{"box": [1, 1, 2, 2]}']
)
def test_a_body_that_is_not_the_expected_json_is_refused(api, image, body):
    response = call(api, "post", annotations_url(image), body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_the_annotations_can_be_listed(api, image, proposal):
    response = api.get(annotations_url(image))
    assert response.status_code == 200
    assert [a["id"] for a in response.json()["results"]] == [proposal.pk]


# Triage ---------------------------------------------------------------------------------------------


def test_accepting_a_proposal(api, annotator, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "accepted"}, version=1)
    assert response.status_code == 200
    assert response.json()["state"] == "accepted"
    assert response.json()["version"] == 2
    assert response["ETag"] == '"2"'
    saved = stored(proposal)
    assert (saved.state, saved.version, saved.updated_by) == ("accepted", 2, annotator)


def test_rejecting_then_undoing_the_rejection(api, proposal):
    assert (
        call(api, "patch", annotation_url(proposal.pk), {"state": "rejected"}, version=1).status_code == 200
    )
    assert stored(proposal).state == "rejected"
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "proposed"}, version=2)
    assert response.status_code == 200
    assert (stored(proposal).state, stored(proposal).version) == ("proposed", 3)


def test_changing_the_class_of_a_proposal(api, project, proposal):
    cup = project.classes.get(name="coffee cup")
    response = call(api, "patch", annotation_url(proposal.pk), {"class_id": cup.pk}, version=1)
    assert response.status_code == 200
    assert response.json()["class_id"] == cup.pk
    saved = stored(proposal)
    assert (saved.label_class_id, saved.state, saved.original_box) == (cup.pk, "proposed", None)


def test_an_unknown_state_is_refused(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "maybe"}, version=1)
    assert response.status_code == 400
    assert stored(proposal).version == 1


def test_a_patch_that_changes_nothing_is_refused(api, proposal):
    assert call(api, "patch", annotation_url(proposal.pk), {}, version=1).status_code == 400


# Edits keep the model's geometry -----------------------------------------------------------------------


def test_the_first_box_edit_of_a_proposal_keeps_the_models_box_and_mask(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"box": [6, 5, 20, 12]}, version=1)
    assert response.status_code == 200
    assert response.json()["edited"] is True
    assert response.json()["state"] == "proposed"  # a geometry edit alone does not decide
    saved = stored(proposal)
    assert saved.box == (6.0, 5.0, 20.0, 12.0)
    assert saved.original_box == [4.0, 5.0, 20.0, 10.0]
    assert saved.original_mask == rle_of_box((4, 5, 20, 10))


def test_later_edits_never_overwrite_the_original_geometry(api, proposal):
    call(api, "patch", annotation_url(proposal.pk), {"box": [6, 5, 20, 12]}, version=1)
    new_mask = rle_of_box((8, 8, 10, 10))
    body = {"box": [8, 8, 10, 10], "mask": new_mask, "state": "accepted"}
    assert call(api, "patch", annotation_url(proposal.pk), body, version=2).status_code == 200
    saved = stored(proposal)
    assert saved.original_box == [4.0, 5.0, 20.0, 10.0]
    assert saved.original_mask == rle_of_box((4, 5, 20, 10))
    assert (saved.box, saved.mask, saved.state) == ((8.0, 8.0, 10.0, 10.0), new_mask, "accepted")


def test_a_mask_edit_alone_keeps_the_original_too(api, proposal):
    body = {"mask": rle_of_box((4, 5, 18, 10)), "polygons": [[[4, 5, 22, 5, 22, 15, 4, 15]]]}
    assert call(api, "patch", annotation_url(proposal.pk), body, version=1).status_code == 200
    saved = stored(proposal)
    assert saved.original_box == [4.0, 5.0, 20.0, 10.0]
    assert saved.original_mask == rle_of_box((4, 5, 20, 10))


def test_the_same_box_sent_again_is_not_an_edit(api, proposal):
    call(api, "patch", annotation_url(proposal.pk), {"box": [4, 5, 20, 10], "state": "accepted"}, version=1)
    assert stored(proposal).original_box is None


def test_editing_a_drawn_box_keeps_no_original(api, image):
    drawn = add_annotation(image, source="human", state="accepted", score=None)
    assert call(api, "patch", annotation_url(drawn.pk), {"box": [1, 1, 5, 5]}, version=1).status_code == 200
    assert stored(drawn).original_box is None


def test_a_box_edit_outside_the_image_is_refused(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"box": [60, 0, 10, 10]}, version=1)
    assert response.status_code == 400
    assert stored(proposal).box == (4.0, 5.0, 20.0, 10.0)


# Concurrency ------------------------------------------------------------------------------------------


def test_of_two_writers_on_the_same_version_one_wins_and_the_other_gets_412(api, proposal):
    first = call(api, "patch", annotation_url(proposal.pk), {"state": "accepted"}, version=1)
    second = call(api, "patch", annotation_url(proposal.pk), {"state": "rejected"}, version=1)
    assert first.status_code == 200
    assert second.status_code == 412
    body = second.json()
    assert body["error"] == "This annotation was changed by someone else — reload the image."
    assert body["current"]["state"] == "accepted"
    assert body["current"]["version"] == 2
    assert (stored(proposal).state, stored(proposal).version) == ("accepted", 2)


def test_the_conditional_update_refuses_a_write_that_lost_the_race(annotator, proposal):
    loaded = Annotation.objects.select_related("image__project").get(pk=proposal.pk)
    Annotation.objects.filter(pk=proposal.pk).update(state="rejected", version=2)  # the other writer
    with pytest.raises(review.Stale) as caught:
        review.annotation_update(annotation=loaded, user=annotator, version=1, state="accepted")
    assert caught.value.extra["current"]["state"] == "rejected"
    assert stored(proposal).state == "rejected"


def test_a_write_without_a_version_gets_428(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "accepted"})
    assert response.status_code == 428
    assert response.json()["error"]
    assert stored(proposal).state == "proposed"


@pytest.mark.parametrize("header", ['"1"', 'W/"1"', "1"])
def test_if_match_takes_the_quoted_or_plain_version(api, proposal, header):
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "accepted"}, HTTP_IF_MATCH=header)
    assert response.status_code == 200


def test_the_version_can_come_in_the_body(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), {"state": "accepted", "version": 1})
    assert response.status_code == 200
    stale = call(api, "patch", annotation_url(proposal.pk), {"state": "rejected", "version": 1})
    assert stale.status_code == 412


# Delete (undo of a drawn box) -------------------------------------------------------------------------


def test_a_drawn_box_can_be_deleted(api, image):
    drawn = add_annotation(image, source="human", state="accepted", score=None)
    assert call(api, "delete", annotation_url(drawn.pk), version=1).status_code == 204
    assert not Annotation.objects.filter(pk=drawn.pk).exists()


def test_a_model_proposal_cannot_be_deleted(api, proposal):
    response = call(api, "delete", annotation_url(proposal.pk), version=1)
    assert response.status_code == 409
    assert response.json()["error"] == "reject model proposals instead of deleting them"
    assert Annotation.objects.filter(pk=proposal.pk).exists()


def test_deleting_an_old_version_is_refused(api, image):
    drawn = add_annotation(image, source="human", state="accepted", score=None)
    Annotation.objects.filter(pk=drawn.pk).update(version=2)
    response = call(api, "delete", annotation_url(drawn.pk), version=1)
    assert response.status_code == 412
    assert response.json()["current"]["version"] == 2
    assert call(api, "delete", annotation_url(drawn.pk)).status_code == 428
    assert Annotation.objects.filter(pk=drawn.pk).exists()


# Bulk ----------------------------------------------------------------------------------------------


def bulk(api, image, updates):
    return call(api, "post", image_url("api-image-annotation-states", image), {"updates": updates})


def test_accept_all_visible_reports_the_stale_one_as_a_conflict(api, image):
    proposals = [add_annotation(image, box=(i, i, 5, 5)) for i in range(4)]
    Annotation.objects.filter(pk=proposals[2].pk).update(state="rejected", version=2)  # someone else
    response = bulk(api, image, [{"id": p.pk, "version": 1, "state": "accepted"} for p in proposals])
    assert response.status_code == 200
    body = response.json()
    assert body["conflicts"] == [proposals[2].pk]
    assert sorted(a["id"] for a in body["annotations"]) == sorted(
        p.pk for i, p in enumerate(proposals) if i != 2
    )
    assert all(a["state"] == "accepted" and a["version"] == 2 for a in body["annotations"])
    assert [(a["id"], a["state"]) for a in body["current"]] == [(proposals[2].pk, "rejected")]
    states = dict(Annotation.objects.values_list("pk", "state"))
    assert [states[p.pk] for p in proposals] == ["accepted", "accepted", "rejected", "accepted"]


def test_bulk_takes_a_mix_of_states_and_versions(api, image):
    a, b = add_annotation(image), add_annotation(image)
    Annotation.objects.filter(pk=b.pk).update(version=5)
    updates = [
        {"id": a.pk, "version": 1, "state": "rejected"},
        {"id": b.pk, "version": 5, "state": "accepted"},
    ]
    body = bulk(api, image, updates).json()
    assert body["conflicts"] == []
    assert {(x["id"], x["state"], x["version"]) for x in body["annotations"]} == {
        (a.pk, "rejected", 2),
        (b.pk, "accepted", 6),
    }


def test_bulk_refuses_annotations_of_another_image(api, project, image):
    (other_image,) = add_images(project, 1, start=50)
    mine, foreign = add_annotation(image), add_annotation(other_image)
    updates = [{"id": a.pk, "version": 1, "state": "accepted"} for a in (mine, foreign)]
    response = bulk(api, image, updates)
    assert response.status_code == 400
    assert str(foreign.pk) in response.json()["error"]
    assert set(Annotation.objects.values_list("state", flat=True)) == {"proposed"}


@pytest.mark.parametrize(
    "updates",
    [
        "accepted",
        [{"id": 1, "version": 1}],
        [{"id": 1, "version": 1, "state": "accepted", "box": [0, 0, 1, 1]}],
        [{"id": 1, "version": 1, "state": "nope"}],
        [{"id": 1, "version": 0, "state": "accepted"}],
        [{"id": 1, "version": 1, "state": "accepted"}] * 2,
        [{"id": i, "version": 1, "state": "accepted"} for i in range(2001)],
    ],
)
def test_bulk_refuses_malformed_updates(api, image, updates):
    assert bulk(api, image, updates).status_code == 400


def test_bulk_accepts_two_thousand_updates_in_a_few_queries(api, image):
    add_annotations(image, 2000)
    updates = [
        {"id": pk, "version": 1, "state": "accepted"} for pk in image.annotations.values_list("pk", flat=True)
    ]
    with CaptureQueriesContext(connection) as ctx:
        response = bulk(api, image, updates)
    assert response.status_code == 200
    assert len(response.json()["annotations"]) == 2000
    assert len(ctx.captured_queries) < 25
    assert set(image.annotations.values_list("state", flat=True)) == {"accepted"}


# Thresholds ---------------------------------------------------------------------------------------------


def threshold(api, project, body):
    return call(api, "post", reverse("api-project-threshold", kwargs={"project_id": project.pk}), body)


def test_a_manager_saves_the_projects_threshold(client_for, manager, project):
    response = threshold(client_for(manager), project, {"box_threshold": 0.42})
    assert response.status_code == 200
    assert response.json()["box_threshold"] == 0.42
    project.refresh_from_db()
    assert project.box_threshold == 0.42


def test_a_manager_saves_a_class_threshold_and_clears_it(client_for, manager, project):
    cup = project.classes.get(name="coffee cup")
    api = client_for(manager)
    assert threshold(api, project, {"box_threshold": 0.7, "class_id": cup.pk}).status_code == 200
    cup.refresh_from_db()
    assert cup.box_threshold == 0.7
    assert threshold(api, project, {"box_threshold": None, "class_id": cup.pk}).status_code == 200
    cup.refresh_from_db()
    assert cup.box_threshold is None


@pytest.mark.parametrize(
    "body",
    [
        {"box_threshold": 1.5},
        {"box_threshold": -0.1},
        {"box_threshold": "0.4"},
        {"box_threshold": None},
        {"box_threshold": 0.05},  # under the lowest stored score (0.1)
        {"box_threshold": 0.4, "class_id": 999999},
        {"box_threshold": 2, "class_id": None},
        {"threshold": 0.4},
    ],
)
def test_a_bad_threshold_is_refused(client_for, manager, project, body):
    response = threshold(client_for(manager), project, body)
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.box_threshold == 0.35
    assert set(project.classes.values_list("box_threshold", flat=True)) == {None}


def test_an_annotator_cannot_save_a_threshold(api, project):
    response = threshold(api, project, {"box_threshold": 0.5})
    assert response.status_code == 403
    assert response.json()["error"]
    project.refresh_from_db()
    assert project.box_threshold == 0.35


def test_json_errors_are_json(api, proposal):
    response = call(api, "patch", annotation_url(proposal.pk), "not json", version=1)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"].startswith("The body is not valid JSON")
