"""Who may see and change what: login everywhere, 404 for outsiders, 403 for the wrong role."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from labeling.access import image_for_user, project_for_user, projects_for_user
from labeling.models import Membership, Project
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from tests.conftest import image_bytes, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
PROJECT_PAGES = [
    "project-detail",
    "project-edit",
    "project-settings",
    "project-prelabel",
    "project-export-import",
    "project-images",
    "project-members",
]
MANAGER_PAGES = [
    "project-edit",
    "project-settings",
    "project-prelabel",
    "project-export-import",
    "project-members",
]
IMAGE_PAGES = ["image-file", "image-thumbnail"]


@pytest.fixture
def image(project):
    report = images_ingest(project=project, files=[("photo.png", io.BytesIO(image_bytes("PNG")))])
    return project.images.get(pk=report.created[0][1])


def url(name: str, obj=None) -> str:
    if obj is None:
        return reverse(name)
    key = "image_id" if name.startswith("image-") else "project_id"
    return reverse(name, kwargs={key: obj.pk})


def all_page_urls(project, image) -> list[str]:
    return [
        url("project-list"),
        url("project-create"),
        *(url(name, project) for name in PROJECT_PAGES),
        url("project-upload", project),
        *(url(name, image) for name in IMAGE_PAGES),
    ]


# Anonymous -----------------------------------------------------------------------------------


def test_every_page_sends_an_anonymous_visitor_to_the_login_page(client, project, image):
    login = reverse("login")
    for page in all_page_urls(project, image):
        for response in (client.get(page), client.post(page)):
            assert response.status_code == 302, page
            location = urlsplit(response["Location"])
            assert location.path == login, page
            assert f"next={page}" in response["Location"].replace("%2F", "/"), page


def test_an_anonymous_htmx_request_is_not_given_the_page(client, project, image):
    response = client.get(url("project-images", project), **HTMX)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("login")


def test_healthz_is_public(client, db):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.content == b"ok"


def test_the_login_page_is_public(client, db):
    assert client.get(reverse("login")).status_code == 200


def test_nothing_is_uploaded_by_an_anonymous_visitor(client, project):
    client.post(url("project-upload", project), {"files": [io.BytesIO(image_bytes("PNG"))]})
    assert not project.images.exists()


# Outsiders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROJECT_PAGES)
def test_it_hides_a_foreign_project_from_an_outsider(client_for, outsider, project, name):
    client = client_for(outsider)
    assert client.get(url(name, project)).status_code == 404
    assert client.get(url(name, project), **HTMX).status_code == 404


@pytest.mark.parametrize("name", ["project-edit", "project-members"])
def test_it_refuses_changes_to_a_foreign_project_from_an_outsider(client_for, outsider, project, name):
    response = client_for(outsider).post(url(name, project), {"name": "Hijacked", "username": "olga"})
    assert response.status_code == 404
    project.refresh_from_db()
    assert project.name == "Kitchen"
    assert not project.memberships.filter(user=outsider).exists()


def test_it_refuses_an_upload_to_a_foreign_project(client_for, outsider, project):
    upload = io.BytesIO(image_bytes("PNG"))
    upload.name = "sneaky.png"
    response = client_for(outsider).post(url("project-upload", project), {"files": [upload]})
    assert response.status_code == 404
    assert not project.images.exists()


@pytest.mark.parametrize("name", IMAGE_PAGES)
def test_it_hides_the_images_of_a_foreign_project(client_for, outsider, image, name):
    assert client_for(outsider).get(url(name, image)).status_code == 404


def test_a_missing_project_and_a_foreign_one_look_the_same(client_for, outsider, project):
    client = client_for(outsider)
    missing = reverse("project-detail", kwargs={"project_id": project.pk + 1000})
    assert client.get(missing).status_code == client.get(url("project-detail", project)).status_code == 404


def test_a_manager_of_one_project_cannot_reach_another(client_for, manager, outsider, image):
    other = project_create(user=outsider, name="Olga's", classes=[{"name": "dog"}])
    client = client_for(manager)
    assert client.get(url("project-detail", other)).status_code == 404
    assert client.get(url("project-edit", other)).status_code == 404
    # ...and the outsider, manager of her own project, still cannot see the manager's image.
    assert client_for(outsider).get(url("image-file", image)).status_code == 404


# Annotators ----------------------------------------------------------------------------------


def test_an_annotator_sees_the_project_and_its_images(client_for, annotator, project, image):
    client = client_for(annotator)
    detail = client.get(url("project-detail", project))
    assert detail.status_code == 200
    assert b"Kitchen" in detail.content
    assert url("project-settings", project).encode() not in detail.content  # no manager actions
    assert b'id="upload-form"' not in detail.content
    assert client.get(url("project-images", project), **HTMX).status_code == 200
    assert client.get(url("image-file", image)).status_code == 200
    assert client.get(url("image-thumbnail", image)).status_code == 200


@pytest.mark.parametrize("name", MANAGER_PAGES)
def test_an_annotator_may_not_manage_the_project(client_for, annotator, project, name):
    client = client_for(annotator)
    assert client.get(url(name, project)).status_code == 403
    if name != "project-export-import":  # a page only (GET): its forms post to their own URLs
        assert client.post(url(name, project), {"name": "Renamed", "username": "anna"}).status_code == 403
    project.refresh_from_db()
    assert project.name == "Kitchen"


def test_an_annotator_may_not_upload(client_for, annotator, project):
    upload = io.BytesIO(image_bytes("PNG"))
    upload.name = "mine.png"
    response = client_for(annotator).post(url("project-upload", project), {"files": [upload]}, **HTMX)
    assert response.status_code == 403
    assert not project.images.exists()


def test_a_manager_sees_the_manager_actions(client_for, manager, project):
    detail = client_for(manager).get(url("project-detail", project))
    assert url("project-settings", project).encode() in detail.content
    assert b'id="upload-form"' in detail.content


# Staff ---------------------------------------------------------------------------------------


def test_staff_see_and_manage_every_project(client_for, admin_user, project, image):
    client = client_for(admin_user)
    assert not Membership.objects.filter(user=admin_user).exists()
    for name in PROJECT_PAGES:
        assert client.get(url(name, project), **HTMX).status_code == 200, name
    for name in IMAGE_PAGES:
        assert client.get(url(name, image)).status_code == 200, name
    assert b"Kitchen" in client.get(url("project-list")).content


# The project list ----------------------------------------------------------------------------


def test_the_project_list_shows_only_the_users_projects(client_for, annotator, outsider, project):
    project_create(user=outsider, name="Secret garden", classes=[{"name": "rose"}])
    content = client_for(annotator).get(url("project-list")).content
    assert b"Kitchen" in content
    assert b"Secret garden" not in content


def test_the_project_list_is_empty_for_a_user_in_no_project(client_for, outsider, project):
    response = client_for(outsider).get(url("project-list"))
    assert response.status_code == 200
    assert b"Kitchen" not in response.content
    assert b"No projects yet." in response.content


def test_projects_for_user_matches_memberships(project, manager, annotator, outsider, admin_user):
    other = project_create(user=outsider, name="Other", classes=[{"name": "x"}])
    assert list(projects_for_user(annotator)) == [project]
    assert list(projects_for_user(outsider)) == [other]
    assert set(projects_for_user(admin_user)) == {project, other}


# Creating projects ---------------------------------------------------------------------------


def test_a_user_without_the_add_project_permission_cannot_create_projects(client_for, manager):
    client = client_for(manager)
    assert client.get(url("project-create")).status_code == 403
    response = client.post(url("project-create"), {"name": "Mine"})
    assert response.status_code == 403
    assert not Project.objects.filter(name="Mine").exists()
    assert b"New project" not in client.get(url("project-list")).content


def test_staff_can_open_the_new_project_page(client_for, admin_user):
    response = client_for(admin_user).get(url("project-create"))
    assert response.status_code == 200
    assert b'name="classes-TOTAL_FORMS"' in response.content


def test_a_user_with_the_add_project_permission_can_create_projects(client_for, db):
    user = make_user("creator")
    user.user_permissions.add(
        Permission.objects.get(codename="add_project", content_type__app_label="labeling")
    )
    client = client_for(user)
    assert client.get(url("project-create")).status_code == 200
    assert b"New project" in client.get(url("project-list")).content


# The access helpers --------------------------------------------------------------------------


def test_project_for_user_gives_the_role(project, manager, annotator, admin_user):
    assert project_for_user(manager, project.pk, manage=True) == (project, Membership.Role.MANAGER)
    assert project_for_user(annotator, project.pk) == (project, Membership.Role.ANNOTATOR)
    assert project_for_user(admin_user, project.pk, manage=True) == (project, "admin")


def test_image_for_user_refuses_an_outsider(image, outsider, annotator):
    from django.http import Http404

    assert image_for_user(annotator, image.pk)[0] == image
    with pytest.raises(Http404):
        image_for_user(outsider, image.pk)
