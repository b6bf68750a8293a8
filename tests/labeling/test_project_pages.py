"""Project pages: create and edit with the classes formset, the image grid, members."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import PALETTE, Annotation, Image, LabelClass, Membership, Project
from labeling.services.projects import membership_set, project_create
from labeling.views.projects import IMAGES_PER_PAGE
from tests.labeling.review_helpers import add_images

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
PROJECT_FIELDS = {
    "name": "Street scenes",
    "description": "Cars and people",
    "box_threshold": "0.4",
    "text_threshold": "0.25",
    "keep_threshold": "0.1",
    "prompt_mode": "joint",
    "segment": "on",
    "detector": "IDEA-Research/grounding-dino-tiny",
    "segmenter": "vit_b",
}
BLANK_ROW = {"name": "", "prompt": "", "box_threshold": ""}


def form_data(rows: list[dict], *, initial: int = 0, **fields) -> dict:
    """POST data for the project form and its classes formset (prefix "classes")."""
    data = {
        **PROJECT_FIELDS,
        **fields,
        "classes-TOTAL_FORMS": str(len(rows)),
        "classes-INITIAL_FORMS": str(initial),
        "classes-MIN_NUM_FORMS": "0",
        "classes-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        # A browser sends the color input's value: a new row's palette color unless changed.
        for key, value in {**BLANK_ROW, "color": PALETTE[i % len(PALETTE)], **row}.items():
            if value is not None:
                data[f"classes-{i}-{key}"] = value
    return data


def rows_of(project: Project) -> list[dict]:
    """One formset row per existing class, as the edit page renders them."""
    return [
        {
            "id": str(c.pk),
            "name": c.name,
            "prompt": c.prompt,
            "color": c.color,
            "box_threshold": "" if c.box_threshold is None else str(c.box_threshold),
        }
        for c in project.classes.all()
    ]


def post_edit(client, project: Project, rows: list[dict], *, new: int = 0):
    """POST the edit page: the project's own name and description, and these class rows (the
    last `new` of them new ones)."""
    return client.post(
        reverse("project-edit", kwargs={"project_id": project.pk}),
        form_data(rows, initial=len(rows) - new, name=project.name, description=project.description),
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def tile_names(response) -> list[str]:
    return re.findall(r'<span class="name" title="([^"]+)">', response.content.decode())


@pytest.fixture
def creator(admin_user):
    return admin_user


# Creating ------------------------------------------------------------------------------------


def test_it_creates_a_project_with_its_classes_and_makes_the_creator_manager(client_for, creator):
    rows = [{"name": "car"}, {"name": "person", "prompt": "a walking person", "box_threshold": "0.5"}]
    response = client_for(creator).post(reverse("project-create"), form_data([*rows, BLANK_ROW, BLANK_ROW]))

    project = Project.objects.get(name="Street scenes")
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url()
    assert project.box_threshold == 0.4
    assert project.created_by == creator
    assert [(c.name, c.prompt, c.box_threshold) for c in project.classes.all()] == [
        ("car", "car", None),
        ("person", "a walking person", 0.5),
    ]
    assert [c.order for c in project.classes.all()] == [0, 1]
    assert [c.color for c in project.classes.all()] == PALETTE[:2]  # not all alike
    assert Membership.objects.get(project=project, user=creator).role == Membership.Role.MANAGER
    assert 'Project "Street scenes" created.' in messages_of(response)


def test_the_new_project_page_renders_the_formset(client_for, creator):
    response = client_for(creator).get(reverse("project-create"))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="classes-TOTAL_FORMS" value="4"' in content
    assert 'name="classes-0-name"' in content


@pytest.mark.parametrize("second", ["car", "Car", " CAR "])
def test_it_refuses_two_classes_with_the_same_name(client_for, creator, second):
    response = client_for(creator).post(
        reverse("project-create"), form_data([{"name": "car"}, {"name": second}, BLANK_ROW])
    )
    assert response.status_code == 400
    assert b"Two classes have this name." in response.content
    assert not Project.objects.exists()
    assert not LabelClass.objects.exists()


def test_it_refuses_a_project_without_a_class(client_for, creator):
    response = client_for(creator).post(reverse("project-create"), form_data([BLANK_ROW, BLANK_ROW]))
    assert response.status_code == 400
    assert b"A project needs at least one class." in response.content
    assert not Project.objects.exists()


def test_it_refuses_a_keep_threshold_above_the_box_threshold(client_for, creator):
    response = client_for(creator).post(
        reverse("project-create"), form_data([{"name": "car"}], box_threshold="0.2", keep_threshold="0.3")
    )
    assert response.status_code == 400
    assert b"cannot be above the box threshold" in response.content
    assert not Project.objects.exists()


def test_it_refuses_a_threshold_outside_zero_to_one(client_for, creator):
    response = client_for(creator).post(
        reverse("project-create"), form_data([{"name": "car"}], box_threshold="1.5")
    )
    assert response.status_code == 400
    assert not Project.objects.exists()


# Editing -------------------------------------------------------------------------------------


def test_editing_renames_a_class(client_for, manager, project):
    cat = project.classes.get(name="cat")
    rows = rows_of(project)
    rows[0].update(name="kitten", prompt="")
    response = post_edit(client_for(manager), project, rows)
    assert response.status_code == 302
    cat.refresh_from_db()
    assert (cat.name, cat.prompt) == ("kitten", "kitten")
    assert sorted(project.classes.values_list("name", flat=True)) == ["coffee cup", "kitten"]


def test_editing_adds_a_class_after_the_existing_ones(client_for, manager, project):
    rows = [*rows_of(project), {"name": "spoon"}]
    response = post_edit(client_for(manager), project, rows, new=1)
    assert response.status_code == 302
    assert list(project.classes.values_list("name", "order")) == [("cat", 0), ("coffee cup", 1), ("spoon", 2)]


def test_editing_refuses_a_new_class_named_like_an_existing_one(client_for, manager, project):
    rows = [*rows_of(project), {"name": "CAT"}]
    response = post_edit(client_for(manager), project, rows, new=1)
    assert response.status_code == 400
    assert b"Two classes have this name." in response.content
    assert project.classes.count() == 2


def test_editing_deletes_an_unused_class(client_for, manager, project):
    rows = rows_of(project)
    rows[1]["DELETE"] = "on"
    response = post_edit(client_for(manager), project, rows)
    assert response.status_code == 302
    assert list(project.classes.values_list("name", flat=True)) == ["cat"]


def test_editing_refuses_to_delete_a_class_with_annotations(client_for, manager, project):
    add_images(project, 1, status=Image.Status.NEW)
    cup = project.classes.get(name="coffee cup")
    Annotation.objects.create(image=project.images.get(), label_class=cup, x=1, y=1, w=10, h=10)
    rows = rows_of(project)
    rows[1]["DELETE"] = "on"
    response = post_edit(client_for(manager), project, rows)
    assert response.status_code == 400
    assert b"has annotations and cannot be deleted" in response.content
    assert project.classes.filter(pk=cup.pk).exists()
    assert cup.annotations.count() == 1


def test_editing_refuses_to_delete_every_class(client_for, manager, project):
    rows = rows_of(project)
    for row in rows:
        row["DELETE"] = "on"
    response = post_edit(client_for(manager), project, rows)
    assert response.status_code == 400
    assert b"A project needs at least one class." in response.content
    assert project.classes.count() == 2


def test_the_edit_page_shows_the_classes(client_for, manager, project):
    response = client_for(manager).get(reverse("project-edit", kwargs={"project_id": project.pk}))
    assert response.status_code == 200
    assert b'value="coffee cup"' in response.content
    assert b'value="a cup of coffee"' in response.content


# The image grid ------------------------------------------------------------------------------


def test_the_grid_filters_by_status(client_for, annotator, project):
    add_images(project, 3, status=Image.Status.NEW)
    add_images(project, 2, status=Image.Status.DONE, start=100)
    url = reverse("project-images", kwargs={"project_id": project.pk})
    done = client_for(annotator).get(url, {"status": "done"}, **HTMX)
    assert done.status_code == 200
    assert tile_names(done) == ["img-0100.png", "img-0101.png"]
    assert b"<html" not in done.content  # the partial alone
    everything = client_for(annotator).get(url, **HTMX)
    assert len(tile_names(everything)) == 5


def test_the_grid_ignores_an_unknown_status(client_for, annotator, project):
    add_images(project, 2, status=Image.Status.NEW)
    url = reverse("project-images", kwargs={"project_id": project.pk})
    assert len(tile_names(client_for(annotator).get(url, {"status": "bogus"}, **HTMX))) == 2


def test_the_grid_says_when_no_image_has_the_status(client_for, annotator, project):
    add_images(project, 2, status=Image.Status.NEW)
    url = reverse("project-images", kwargs={"project_id": project.pk})
    response = client_for(annotator).get(url, {"status": "skipped"}, **HTMX)
    assert tile_names(response) == []
    assert b"No images with this status yet." in response.content


def test_the_grid_pages_through_the_images(client_for, annotator, project):
    images = add_images(project, IMAGES_PER_PAGE + 5, status=Image.Status.NEW)
    url = reverse("project-images", kwargs={"project_id": project.pk})
    client = client_for(annotator)
    first = client.get(url, **HTMX)
    assert len(tile_names(first)) == IMAGES_PER_PAGE
    assert f"{IMAGES_PER_PAGE + 5} images".encode() in first.content
    next_query = f"after={images[IMAGES_PER_PAGE - 1].pk}"
    assert f'href="{project.get_absolute_url()}?{next_query}" rel="next"'.encode() in first.content
    second = client.get(f"{url}?{next_query}", **HTMX)
    assert tile_names(second) == [f"img-{i:04d}.png" for i in range(IMAGES_PER_PAGE, IMAGES_PER_PAGE + 5)]
    assert b'rel="next"' not in second.content
    assert b'rel="prev"' in second.content
    # The last page: the last IMAGES_PER_PAGE images, in order.
    last = client.get(url, {"last": "1"}, **HTMX)
    assert tile_names(last) == [f"img-{i:04d}.png" for i in range(5, IMAGES_PER_PAGE + 5)]


def test_the_grid_pages_within_a_status(client_for, annotator, project):
    images = add_images(project, IMAGES_PER_PAGE + 1, status=Image.Status.PRELABELED)
    add_images(project, 3, status=Image.Status.NEW, start=1000)
    url = reverse("project-images", kwargs={"project_id": project.pk})
    after = images[IMAGES_PER_PAGE - 1].pk
    response = client_for(annotator).get(url, {"status": "prelabeled", "after": after}, **HTMX)
    assert tile_names(response) == [f"img-{IMAGES_PER_PAGE:04d}.png"]
    assert f"?status=prelabeled&amp;before={images[IMAGES_PER_PAGE].pk}".encode() in response.content


def test_the_grid_url_without_htmx_redirects_to_the_filtered_page(client_for, annotator, project):
    response = client_for(annotator).get(
        reverse("project-images", kwargs={"project_id": project.pk}), {"status": "done"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{project.get_absolute_url()}?status=done"


def test_the_project_page_filters_the_grid_too(client_for, annotator, project):
    add_images(project, 2, status=Image.Status.NEW)
    add_images(project, 1, status=Image.Status.DONE, start=50)
    response = client_for(annotator).get(project.get_absolute_url(), {"status": "done"})
    assert tile_names(response) == ["img-0050.png"]


def test_the_project_list_counts_images_by_status(client_for, annotator, project):
    add_images(project, 3, status=Image.Status.NEW)
    add_images(project, 2, status=Image.Status.DONE, start=10)
    content = client_for(annotator).get(reverse("project-list")).content.decode()
    assert "5 images" in content
    assert "3 new" in content
    assert "2 done" in content


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_project_page_makes_as_many_queries_for_60_images_as_for_5(client_for, annotator, project):
    client = client_for(annotator)
    url = project.get_absolute_url()
    add_images(project, 5, status=Image.Status.NEW)
    with_5 = count_queries(client, url)
    add_images(project, 55, start=5, status=Image.Status.NEW)
    with_60 = count_queries(client, url)
    assert len(tile_names(client.get(url))) == IMAGES_PER_PAGE  # the page really lists the images
    assert with_60 == with_5


def test_the_grid_and_list_make_as_many_queries_for_60_images_as_for_5(client_for, annotator, project):
    client = client_for(annotator)
    client.defaults.update(HTMX)
    grid = reverse("project-images", kwargs={"project_id": project.pk})
    add_images(project, 5, status=Image.Status.NEW)
    counts_5 = (count_queries(client, grid), count_queries(client, reverse("project-list")))
    add_images(project, 55, start=5, status=Image.Status.NEW)
    counts_60 = (count_queries(client, grid), count_queries(client, reverse("project-list")))
    assert counts_60 == counts_5


# Members -------------------------------------------------------------------------------------


def members_url(project) -> str:
    return reverse("project-members", kwargs={"project_id": project.pk})


def test_the_members_page_lists_the_members(client_for, manager, project):
    response = client_for(manager).get(members_url(project))
    assert response.status_code == 200
    assert b"manny" in response.content
    assert b"anna" in response.content


def test_a_manager_adds_an_annotator_by_username(client_for, manager, outsider, project):
    response = client_for(manager).post(members_url(project), {"username": " olga ", "role": "annotator"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=outsider).role == Membership.Role.ANNOTATOR
    assert "olga is now an annotator of Kitchen." in messages_of(response)
    # The new member now sees the project.
    assert client_for(outsider).get(project.get_absolute_url()).status_code == 200


def test_a_manager_changes_a_members_role(client_for, manager, annotator, project):
    client_for(manager).post(members_url(project), {"username": "anna", "role": "manager"})
    assert Membership.objects.get(project=project, user=annotator).role == Membership.Role.MANAGER
    assert Membership.objects.filter(project=project, user=annotator).count() == 1


def test_it_refuses_an_unknown_username(client_for, manager, project):
    response = client_for(manager).post(members_url(project), {"username": "ghost", "role": "annotator"})
    assert response.status_code == 400
    assert b"No active user named &quot;ghost&quot;." in response.content
    assert project.memberships.count() == 2


def test_it_refuses_an_inactive_user(client_for, manager, outsider, project):
    outsider.is_active = False
    outsider.save()
    response = client_for(manager).post(members_url(project), {"username": "olga", "role": "annotator"})
    assert response.status_code == 400
    assert not project.memberships.filter(user=outsider).exists()


def test_a_manager_removes_an_annotator(client_for, manager, annotator, project):
    membership = Membership.objects.get(project=project, user=annotator)
    response = client_for(manager).post(members_url(project), {"remove": str(membership.pk)})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert client_for(annotator).get(project.get_absolute_url()).status_code == 404


def test_the_last_manager_cannot_be_removed(client_for, manager, project):
    membership = Membership.objects.get(project=project, user=manager)
    response = client_for(manager).post(members_url(project), {"remove": str(membership.pk)})
    assert response.status_code == 302
    assert "A project must keep at least one manager." in messages_of(response)
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_manager_can_be_removed_when_another_remains(client_for, manager, annotator, project):
    membership_set(project=project, user=annotator, role=Membership.Role.MANAGER)
    membership = Membership.objects.get(project=project, user=manager)
    client_for(manager).post(members_url(project), {"remove": str(membership.pk)})
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_removing_a_membership_of_another_project_does_nothing(client_for, manager, outsider, project):
    other = project_create(user=outsider, name="Other", classes=[{"name": "x"}])
    foreign = Membership.objects.get(project=other, user=outsider)
    client_for(manager).post(members_url(project), {"remove": str(foreign.pk)})
    assert Membership.objects.filter(pk=foreign.pk).exists()


def test_editing_swaps_the_names_of_two_classes(client_for, manager, project):
    cat, cup = project.classes.get(name="cat"), project.classes.get(name="coffee cup")
    rows = rows_of(project)
    rows[0]["name"], rows[1]["name"] = "coffee cup", "cat"
    response = post_edit(client_for(manager), project, rows)
    assert response.status_code == 302
    cat.refresh_from_db()
    cup.refresh_from_db()
    assert (cat.name, cup.name) == ("coffee cup", "cat")


def test_it_refuses_to_demote_the_last_manager(project, manager, client_for):
    client = client_for(manager)
    response = client.post(
        f"/projects/{project.pk}/members/", {"username": manager.username, "role": "annotator"}
    )
    assert response.status_code == 400
    assert "at least one manager" in response.content.decode()
    assert project.memberships.get(user=manager).role == "manager"
