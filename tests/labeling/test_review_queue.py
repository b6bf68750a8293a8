"""The review queue: leases (two annotators never get the same image, expiry, renewal), submit,
skip, previous, "nothing left", and who holds what."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import Image, Membership
from labeling.services import review
from tests.labeling.review_helpers import add_annotation, add_images, annotation_url, call, image_url, member

pytestmark = pytest.mark.django_db


def next_url(project) -> str:
    return reverse("review-next", kwargs={"project_id": project.pk})


def review_url(image_id: int) -> str:
    return reverse("image-review", kwargs={"image_id": image_id})


def claim_url(image_id: int) -> str:
    return reverse("api-image-lease", kwargs={"image_id": image_id})


@pytest.fixture
def bob(project):
    return member(project, "bob")


def lease(image: Image) -> tuple[int | None, object]:
    image.refresh_from_db()
    return image.assignee_id, image.lease_expires_at


# The queue --------------------------------------------------------------------------------------


def test_the_queue_hands_out_prelabeled_images_first_then_new_ones_by_id(project, annotator, bob, manager):
    new = add_images(project, 2, status=Image.Status.NEW)
    prelabeled = add_images(project, 2, status=Image.Status.PRELABELED, start=10)
    handed = [review.image_lease_next(project=project, user=user) for user in (annotator, bob, manager)]
    handed.append(review.image_lease_next(project=project, user=member(project, "carl")))
    assert handed == [prelabeled[0].pk, prelabeled[1].pk, new[0].pk, new[1].pk]


def test_two_annotators_never_get_the_same_image(project, annotator, bob):
    first, second = add_images(project, 2)
    assert review.image_lease_next(project=project, user=annotator) == first.pk
    assert review.image_lease_next(project=project, user=bob) == second.pk
    assert lease(first)[0] == annotator.pk
    assert lease(second)[0] == bob.pk


def test_an_annotator_asking_again_gets_the_image_they_hold(project, annotator, bob):
    first, _ = add_images(project, 2)
    assert review.image_lease_next(project=project, user=annotator) == first.pk
    assert review.image_lease_next(project=project, user=annotator) == first.pk
    assert Image.objects.filter(assignee=annotator).count() == 1


def test_asking_again_renews_the_lease(project, annotator):
    (image,) = add_images(project, 1)
    earlier = timezone.now() - timedelta(minutes=10)
    review.image_lease_next(project=project, user=annotator, now=earlier)
    review.image_lease_next(project=project, user=annotator)
    assert lease(image)[1] > timezone.now() + timedelta(minutes=29)


def test_the_lease_lasts_labelgpt_lease_minutes(project, annotator, settings):
    settings.LABELGPT_LEASE_MINUTES = 7
    (image,) = add_images(project, 1)
    now = timezone.now()
    review.image_lease_next(project=project, user=annotator, now=now)
    assert lease(image) == (annotator.pk, now + timedelta(minutes=7))


def test_an_expired_lease_frees_the_image_for_someone_else(project, annotator, bob):
    (image,) = add_images(project, 1)
    long_ago = timezone.now() - timedelta(minutes=31)
    assert review.image_lease_next(project=project, user=annotator, now=long_ago) == image.pk
    assert review.image_lease_next(project=project, user=bob) == image.pk
    assert lease(image)[0] == bob.pk


def test_an_unexpired_lease_is_not_handed_to_someone_else(project, annotator, bob):
    add_images(project, 1)
    review.image_lease_next(project=project, user=annotator)
    assert review.image_lease_next(project=project, user=bob) is None


def test_done_and_skipped_images_are_not_handed_out(project, annotator):
    add_images(project, 1, status=Image.Status.DONE)
    add_images(project, 1, status=Image.Status.SKIPPED, start=1)
    assert review.image_lease_next(project=project, user=annotator) is None


def test_images_of_other_projects_are_not_handed_out(project, annotator, manager):
    from labeling.services.projects import membership_set, project_create

    other = project_create(user=manager, name="Other", classes=[{"name": "dog"}])
    membership_set(project=other, user=annotator, role=Membership.Role.ANNOTATOR)
    add_images(other, 1)
    assert review.image_lease_next(project=project, user=annotator) is None


def test_the_queue_finds_the_next_image_in_constant_queries(project, annotator):
    add_images(project, 3, status=Image.Status.DONE)
    add_images(project, 3, start=3)
    with CaptureQueriesContext(connection) as few:
        review.image_lease_next(project=project, user=annotator)
    Image.objects.filter(project=project).update(status=Image.Status.DONE, assignee=None)
    add_images(project, 200, status=Image.Status.DONE, start=10)
    add_images(project, 200, start=300)
    carl = member(project, "carl")
    with CaptureQueriesContext(connection) as many:
        assert review.image_lease_next(project=project, user=carl) is not None
    assert len(many) == len(few)


@pytest.mark.django_db(transaction=True)
def test_two_threads_never_lease_the_same_image(project, annotator, bob):
    # SQLite serialises writers on one file (and pytest's is in memory): no race to test there.
    # CI runs on PostgreSQL, where a skip would fail the run (tests/ci_strict.py).
    if connection.vendor != "postgresql":
        pytest.skip(f"concurrent claims need PostgreSQL; this run's database is {connection.vendor}")
    add_images(project, 3)
    users = [annotator, bob, *(member(project, f"extra{i}") for i in range(6))]
    barrier = threading.Barrier(len(users))
    results: dict[int, int | None] = {}
    errors: list[BaseException] = []

    def claim(user) -> None:
        try:
            barrier.wait(timeout=10)
            results[user.pk] = review.image_lease_next(project=project, user=user)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    handed = [image_id for image_id in results.values() if image_id is not None]
    assert len(results) == len(users)
    assert sorted(handed) == sorted(project.images.values_list("pk", flat=True))  # each once
    holders = dict(project.images.values_list("pk", "assignee_id"))
    assert {holders[image_id] for image_id in handed} == {u for u, i in results.items() if i is not None}


# The pages --------------------------------------------------------------------------------------


def test_start_reviewing_posts_leases_an_image_and_opens_it(client_for, annotator, project, task_calls):
    (image,) = add_images(project, 1)
    response = client_for(annotator).post(next_url(project))
    assert response.status_code == 303  # the browser GETs the review page: a reload posts nothing
    assert response["Location"] == review_url(image.pk)
    assert lease(image)[0] == annotator.pk


def test_with_nothing_left_the_queue_says_so(client_for, annotator, bob, project):
    add_images(project, 2, status=Image.Status.DONE)
    (held,) = add_images(project, 1, start=5)
    review.image_lease_next(project=project, user=bob)
    client = client_for(annotator)
    response = client.post(next_url(project))
    assert response.status_code == 303
    assert response["Location"] == next_url(project)
    response = client.get(next_url(project))
    assert response.status_code == 200
    assert response.templates[0].name == "labeling/review_queue.html"
    content = response.content.decode()
    assert "Nothing left to review" in content
    assert "1 image still to review is being reviewed by others" in content
    assert f'<form method="post" action="{next_url(project)}"' in content  # "look again"
    assert lease(held)[0] == bob.pk


def test_the_queue_page_shows_what_is_left_and_takes_nothing(client_for, annotator, project, task_calls):
    images = add_images(project, 3)
    response = client_for(annotator).get(next_url(project))
    assert response.status_code == 200
    content = response.content.decode()
    assert "3 images to review" in content
    assert f'<form method="post" action="{next_url(project)}"' in content
    assert 'id="start-reviewing"' in content
    assert [lease(image) for image in images] == [(None, None)] * 3
    assert task_calls.calls == []


def test_the_review_tab_has_a_start_reviewing_form_for_annotators(client_for, annotator, project):
    add_images(project, 1)
    content = client_for(annotator).get(next_url(project)).content.decode()
    assert f'<form method="post" action="{next_url(project)}"' in content
    assert 'name="csrfmiddlewaretoken"' in content
    # "Start reviewing" is that form's button (a link would be a GET, which takes nothing: the
    # Review tab's own link only shows this queue).
    start = content.index(f'<form method="post" action="{next_url(project)}"')
    button = content.index('id="start-reviewing">Start reviewing</button>', start)
    assert button < content.index("</form>", start)
    assert reverse("project-leases", kwargs={"project_id": project.pk}) not in content


def test_opening_a_free_image_takes_nothing_and_its_claim_leases_it(
    client_for, annotator, project, task_calls
):
    (image,) = add_images(project, 1)
    client = client_for(annotator)
    response = client.get(review_url(image.pk))
    assert response.status_code == 200
    data = response.context["review_data"]
    assert (data["held_by_other"], data["lease_expires_at"], data["lease_seconds"]) == (None, None, None)
    assert data["urls"]["lease"] == claim_url(image.pk)
    assert lease(image) == (None, None)
    assert task_calls.calls == []

    claimed = call(client, "post", claim_url(image.pk), {})
    assert claimed.status_code == 200
    body = claimed.json()
    holder, expires = lease(image)
    assert holder == annotator.pk
    assert expires > timezone.now() + timedelta(minutes=29)
    assert body["held_by_other"] is None
    assert body["lease_expires_at"] == expires.isoformat()
    assert 1790 <= body["lease_seconds"] <= 1800
    assert body["image"]["id"] == image.pk
    assert body["urls"] == data["urls"]


def test_an_image_leased_to_someone_else_opens_read_only(client_for, annotator, bob, project, task_calls):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=bob)
    before = lease(image)
    client = client_for(annotator)
    data = client.get(review_url(image.pk)).context["review_data"]
    assert data["held_by_other"] == "bob"
    assert data["lease_expires_at"] == before[1].isoformat()
    claimed = call(client, "post", claim_url(image.pk), {})
    assert claimed.status_code == 409
    assert claimed.json() == {
        "error": "bob is reviewing this image; it is read-only for you until they finish.",
        "held_by": "bob",
        "lease_expires_at": before[1].isoformat(),
    }
    assert lease(image) == before
    assert task_calls.calls == []  # nothing to prefetch for a page that cannot segment


def test_the_holder_claiming_again_renews_the_lease(client_for, annotator, project, task_calls):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=annotator, now=timezone.now() - timedelta(minutes=20))
    client = client_for(annotator)
    assert client.get(review_url(image.pk)).context["review_data"]["held_by_other"] is None
    assert call(client, "post", claim_url(image.pk), {}).status_code == 200
    assert lease(image)[1] > timezone.now() + timedelta(minutes=29)


def test_an_expired_lease_of_someone_else_is_claimed(client_for, annotator, bob, project, task_calls):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=bob, now=timezone.now() - timedelta(hours=1))
    client = client_for(annotator)
    assert client.get(review_url(image.pk)).context["review_data"]["held_by_other"] is None
    assert call(client, "post", claim_url(image.pk), {}).status_code == 200
    assert lease(image)[0] == annotator.pk


def test_the_claim_takes_no_field_but_the_known_version(client_for, annotator, project, task_calls):
    (image,) = add_images(project, 1)
    response = call(client_for(annotator), "post", claim_url(image.pk), {"user": 1})
    assert response.status_code == 400
    assert response.json()["error"] == "Unknown field(s): user."
    assert lease(image) == (None, None)


def test_an_annotation_write_renews_the_lease(client_for, annotator, project):
    (image,) = add_images(project, 1)
    proposal = add_annotation(image)
    review.image_lease_next(project=project, user=annotator, now=timezone.now() - timedelta(minutes=20))
    response = call(
        client_for(annotator), "patch", annotation_url(proposal.pk), {"state": "accepted"}, version=1
    )
    assert response.status_code == 200
    assert lease(image)[1] > timezone.now() + timedelta(minutes=29)


def test_writes_on_an_image_someone_else_holds_are_refused(client_for, annotator, bob, project):
    (image,) = add_images(project, 1)
    proposal = add_annotation(image)
    review.image_lease_next(project=project, user=bob)
    client = client_for(annotator)
    response = call(client, "patch", annotation_url(proposal.pk), {"state": "accepted"}, version=1)
    assert response.status_code == 409
    assert "bob" in response.json()["error"]
    proposal.refresh_from_db()
    assert (proposal.state, proposal.version) == ("proposed", 1)


# Submit and skip -------------------------------------------------------------------------------------


def test_submit_marks_the_image_done_and_releases_the_lease(client_for, annotator, project):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=annotator)
    response = call(client_for(annotator), "post", image_url("api-image-submit", image), {"version": 1})
    assert response.status_code == 200
    assert response.json() == {"id": image.pk, "status": "done", "version": 2, "next": next_url(project)}
    image.refresh_from_db()
    assert image.status == Image.Status.DONE
    assert (image.assignee_id, image.lease_expires_at) == (None, None)
    assert image.reviewed_by_id == annotator.pk
    assert image.reviewed_at is not None
    assert image.version == 2


def test_skip_marks_the_image_skipped_and_releases_the_lease(client_for, annotator, project):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=annotator)
    response = call(client_for(annotator), "post", image_url("api-image-skip", image))
    assert response.status_code == 200
    assert response.json() == {"id": image.pk, "status": "skipped", "version": 2, "next": next_url(project)}
    image.refresh_from_db()
    assert image.status == Image.Status.SKIPPED
    assert (image.assignee_id, image.lease_expires_at) == (None, None)


def test_after_submit_the_next_image_is_handed_out(client_for, annotator, project, task_calls):
    first, second = add_images(project, 2)
    client = client_for(annotator)
    assert client.post(next_url(project))["Location"] == review_url(first.pk)
    call(client, "post", image_url("api-image-submit", first))
    assert client.post(next_url(project))["Location"] == review_url(second.pk)
    call(client, "post", image_url("api-image-skip", second))
    assert client.post(next_url(project))["Location"] == next_url(project)  # nothing left


def test_submitting_an_image_someone_else_holds_is_refused(client_for, annotator, bob, project):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=bob)
    for name in ("api-image-submit", "api-image-skip"):
        response = call(client_for(annotator), "post", image_url(name, image))
        assert response.status_code == 409, name
        assert "bob" in response.json()["error"]
    image.refresh_from_db()
    assert (image.status, image.assignee_id) == (Image.Status.PRELABELED, bob.pk)


def test_submitting_an_image_whose_lease_expired_is_allowed(client_for, annotator, bob, project):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=bob, now=timezone.now() - timedelta(hours=1))
    assert call(client_for(annotator), "post", image_url("api-image-submit", image)).status_code == 200


def test_submitting_an_old_version_of_the_image_is_refused(client_for, annotator, project):
    (image,) = add_images(project, 1)
    Image.objects.filter(pk=image.pk).update(version=3)  # e.g. pre-labeled while it was open
    response = call(client_for(annotator), "post", image_url("api-image-submit", image), {"version": 2})
    assert response.status_code == 412
    assert response.json()["current"]["version"] == 3
    image.refresh_from_db()
    assert image.status == Image.Status.PRELABELED


# Previous --------------------------------------------------------------------------------------------


def test_previous_goes_back_through_the_images_this_user_reviewed(client_for, annotator, bob, project):
    a, b, c, _, current = add_images(project, 5)
    now = timezone.now()
    review.image_submit(image=c, user=annotator, now=now - timedelta(minutes=3))
    review.image_submit(image=b, user=bob, now=now - timedelta(minutes=2))  # someone else's
    review.image_submit(image=a, user=annotator, now=now - timedelta(minutes=1))
    client = client_for(annotator)
    assert client.get(image_url("image-previous", current))["Location"] == review_url(a.pk)
    a.refresh_from_db()
    assert client.get(image_url("image-previous", a))["Location"] == review_url(c.pk)
    c.refresh_from_db()
    # Before the first reviewed one: the image before it in the project.
    assert client.get(image_url("image-previous", c))["Location"] == review_url(b.pk)


def test_previous_without_reviews_goes_to_the_image_before_or_stays(client_for, annotator, project):
    first, second = add_images(project, 2)
    client = client_for(annotator)
    assert client.get(image_url("image-previous", second))["Location"] == review_url(first.pk)
    assert client.get(image_url("image-previous", first))["Location"] == review_url(first.pk)


# Who holds what --------------------------------------------------------------------------------------


def leases_url(project) -> str:
    return reverse("project-leases", kwargs={"project_id": project.pk})


def test_managers_see_who_holds_what(client_for, manager, annotator, bob, project):
    first, second, _ = add_images(project, 3)
    review.image_lease_next(project=project, user=annotator)
    review.image_lease_next(project=project, user=bob)
    review.image_submit(image=second, user=bob)
    client = client_for(manager)
    assert leases_url(project) in client.get(next_url(project)).content.decode()  # the Review tab
    response = client.get(leases_url(project), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    content = response.content.decode()
    assert "anna" in content
    assert first.original_name in content
    assert second.original_name not in content  # submitted: no lease any more


def test_expired_leases_are_not_listed(client_for, manager, annotator, project):
    (image,) = add_images(project, 1)
    review.image_lease_next(project=project, user=annotator, now=timezone.now() - timedelta(hours=1))
    content = client_for(manager).get(leases_url(project)).content.decode()
    assert image.original_name not in content
    assert "Nobody is reviewing" in content


def test_the_leases_list_makes_as_many_queries_for_20_leases_as_for_2(client_for, manager, project):
    client = client_for(manager)
    images = add_images(project, 20)
    users = [member(project, f"user{i}") for i in range(20)]
    for user in users[:2]:
        review.image_lease_next(project=project, user=user)
    with CaptureQueriesContext(connection) as two:
        assert client.get(leases_url(project)).status_code == 200
    for user in users[2:]:
        review.image_lease_next(project=project, user=user)
    with CaptureQueriesContext(connection) as twenty:
        content = client.get(leases_url(project)).content.decode()
    assert all(image.original_name in content for image in images)
    assert len(twenty) == len(two)


def test_the_project_page_makes_as_many_queries_with_many_leases(client_for, manager, project):
    client = client_for(manager)
    add_images(project, 30)
    users = [member(project, f"user{i}") for i in range(30)]
    review.image_lease_next(project=project, user=users[0])
    with CaptureQueriesContext(connection) as one:
        assert client.get(project.get_absolute_url()).status_code == 200
    for user in users[1:]:
        review.image_lease_next(project=project, user=user)
    with CaptureQueriesContext(connection) as thirty:
        assert client.get(project.get_absolute_url()).status_code == 200
    assert len(thirty) == len(one)
