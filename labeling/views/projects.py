"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.selectors.images import (
    DEFAULT_SORT,
    ImagePage,
    image_page,
    image_status_counts,
    images_delete_summary,
)
from labeling.selectors.prelabel import job_active
from labeling.selectors.projects import class_list, invitation_list, member_list, projects_of_user
from labeling.services import images as image_services
from labeling.services.invitations import invitation_revoke, member_add, role_phrase
from labeling.services.projects import membership_remove, project_delete, project_save
from labeling.views.imports import import_context

from ..access import can_create_projects, can_manage, project_for_user
from ..forms import (
    GridPageForm,
    ImagesDeleteForm,
    MemberForm,
    ProjectDeleteForm,
    ProjectForm,
    UploadForm,
    label_class_formset,
)
from ..models import Image, Membership, Project
from .shared import project_panel_view, project_tab_context

IMAGES_PER_PAGE = 48


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "labeling/project_list.html",
        {
            "projects": projects_of_user(user=request.user),
            "can_create": can_create_projects(request.user),
        },
    )


def _project_form_page(
    request: HttpRequest, project: Project | None, *, template: str, context: dict | None = None
) -> HttpResponse:
    """The project form with its classes (create, or the Settings tab): save and go to the
    project's Images tab, or show the form again with its errors (400)."""
    creating = project is None
    instance = project or Project()
    formset_class = label_class_formset(extra=4 if creating else 1)
    if request.method == "POST":
        form = ProjectForm(request.POST, instance=instance)
        formset = formset_class(request.POST, instance=instance, prefix="classes")
        if form.is_valid() and formset.is_valid():
            edits, deleted = formset.class_edits()
            project = project_save(
                user=request.user,
                project=project,
                fields={name: form.cleaned_data[name] for name in ProjectForm.Meta.fields},
                class_edits=edits,
                deleted_class_ids=deleted,
            )
            messages.success(request, f'Project "{project.name}" {"created" if creating else "saved"}.')
            return redirect("project-detail", project_id=project.pk)
    else:
        form = ProjectForm(instance=instance)
        formset = formset_class(instance=instance, prefix="classes")
    return render(
        request,
        template,
        {**(context or {}), "form": form, "formset": formset, "project": project, "creating": creating},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    if not can_create_projects(request.user):
        raise PermissionDenied("You may not create projects; ask an administrator.")
    return _project_form_page(request, None, template="labeling/project_form.html")


@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Settings tab (managers): the project's form and classes, and "Delete project". Also
    answers the old URL /projects/<id>/edit/ (`project-edit`)."""
    project, role = project_for_user(request.user, project_id, manage=True)
    context = {
        **project_tab_context(project, role, "settings"),
        "delete_form": ProjectDeleteForm(project=project),
    }
    return _project_form_page(request, project, template="labeling/project_settings.html", context=context)


@require_POST
def project_delete_view(request: HttpRequest, project_id: int) -> HttpResponse:
    """Delete the project (managers and staff) once its name is typed again: then to the project
    list with a message; a wrong name shows the Settings tab again with the form's error (400)."""
    project, role = project_for_user(request.user, project_id, manage=True)
    form = ProjectDeleteForm(request.POST, project=project)
    if not form.is_valid():
        formset = label_class_formset(extra=1)(instance=project, prefix="classes")
        context = {
            **project_tab_context(project, role, "settings"),
            "form": ProjectForm(instance=project),
            "formset": formset,
            "creating": False,
            "delete_form": form,
        }
        return render(request, "labeling/project_settings.html", context, status=400)
    deleted = project_delete(project=project, user=request.user)
    messages.success(
        request,
        f'Project "{deleted.name}" was deleted, with its {deleted.images} image{pluralize(deleted.images)}.',
    )
    return redirect("project-list")


SORT_LABELS = {
    "added": "Date added",
    "-added": "Date added (newest first)",
    "name": "Name (A → Z)",
    "-name": "Name (Z → A)",
    "status": "Status",
    "-status": "Status (reversed)",
    "annotations": "Annotations (fewest first)",
    "-annotations": "Annotations (most first)",
}


def _grid_context(request: HttpRequest, project: Project) -> dict:
    """The image grid's page (keyset: see GridPageForm) with its pager links, the status tabs'
    counts and links, and the sort and search (all kept in every link and in the reload)."""
    form = GridPageForm(request.GET)
    query = form.page_query()
    status, sort, search = query.pop("status"), query.pop("sort"), query.pop("search")
    page = image_page(
        project=project, size=IMAGES_PER_PAGE, status=status or None, sort=sort, search=search, **query
    )
    counts = image_status_counts(project=project)
    detail = project.get_absolute_url()
    grid = reverse("project-images", kwargs={"project_id": project.pk})
    view = {"sort": sort, "search": search}
    status_links = []
    for value, label, count in [("", "All", counts["all"])] + [
        (value, label, counts[value]) for value, label in Image.Status.choices
    ]:
        suffix = _suffix(_grid_query(value, **view))
        status_links.append(
            {"value": value, "label": label, "count": count, "href": detail + suffix, "grid": grid + suffix}
        )
    return {
        "page": page,
        "status": status,
        "sort": sort,
        "search": search,
        "sorts": list(SORT_LABELS.items()),
        "status_links": status_links,
        "grid_problems": form.problems,
        "counts": counts,
        "total": counts[status] if status else counts["all"],
        "grid_query": _grid_query(status, **view, **_cursor_of(query)),
        "pager": _pager_links(project, status, page, view),
    }


def _cursor_of(query: dict) -> dict:
    """The page's own cursor as it came in (after / before: a Cursor; last: True), for the URL."""
    return {name: value if isinstance(value, bool) else value.encode() for name, value in query.items()}


def _suffix(query: str) -> str:
    return f"?{query}" if query else ""


def _grid_query(status: str, sort: str = DEFAULT_SORT, search: str = "", **cursor) -> str:
    """The grid's query string (without "?"): the status, the sort (unless the default), the
    search, then the cursor if any."""
    query = {
        "status": status,
        "sort": None if sort == DEFAULT_SORT else sort,
        "q": search,
        **cursor,
        "last": 1 if cursor.get("last") else None,
    }
    return urlencode({name: value for name, value in query.items() if value not in ("", None)})


def _pager_links(project: Project, status: str, page: ImagePage, view: dict) -> list[dict]:
    """First / Previous / Next / Last: each with its page URL (href, pushed to the history) and
    its grid partial URL (hx-get), or none where that way holds no image."""
    detail = project.get_absolute_url()
    grid = reverse("project-images", kwargs={"project_id": project.pk})
    ways = [
        ("first", "« First", page.has_previous, {}),
        ("prev", "‹ Previous", page.has_previous, {"before": page.first}),
        ("next", "Next ›", page.has_next, {"after": page.last}),
        ("last", "Last »", page.has_next, {"last": 1}),
    ]
    links = []
    for rel, label, enabled, cursor in ways:
        suffix = _suffix(_grid_query(status, **view, **cursor))
        links.append(
            {"rel": rel, "label": label, "href": detail + suffix if enabled else None, "grid": grid + suffix}
        )
    return links


@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Images tab, the project's first page: the upload (managers) and the image grid."""
    project, role = project_for_user(request.user, project_id)
    context = {
        **project_tab_context(project, role, "images"),
        "classes": list(class_list(project=project)),
        "upload_form": UploadForm(),
        "active_job": job_active(project=project),
        **_grid_context(request, project),
    }
    return render(request, "labeling/project_detail.html", context)


@require_GET
def project_export_import(request: HttpRequest, project_id: int) -> HttpResponse:
    """The Export & import tab (managers): the exports and imports panels (loaded by htmx)."""
    project, role = project_for_user(request.user, project_id, manage=True)
    context = {**project_tab_context(project, role, "export-import"), **import_context()}
    return render(request, "labeling/project_export_import.html", context)


@project_panel_view
def project_images(request: HttpRequest, project: Project, role: str) -> HttpResponse:
    """The image grid alone (htmx: filter, sort, search and page without reloading the page). From
    the sort and search form, the page's URL with them is pushed (HX-Push-Url), so reload and back
    show the same grid; the links push their own."""
    context = _grid_context(request, project)
    response = render(
        request,
        "labeling/project_detail.html#grid",
        {"project": project, "can_manage": can_manage(role), **context},
    )
    if request.headers.get("HX-Trigger") == "grid-view":
        response["HX-Push-Url"] = project.get_absolute_url() + _suffix(context["grid_query"])
    return response


@require_POST
def images_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    """The grid's Delete (managers and staff): the chosen images first answer the grid with a
    confirmation (how many images, how many annotations: the images' own counts); confirmed, they
    are deleted (services.images.images_delete: those someone else is reviewing are left and named)
    and the grid comes back as it was (its query string is the grid's)."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    form = ImagesDeleteForm(request.POST)
    extra: dict = {}
    status = 200
    if not form.is_valid():
        extra["delete_error"] = " ".join(form.non_field_errors()) or "Choose the images to delete first."
        status = 400
    elif not form.cleaned_data["confirm"]:
        extra["delete_confirm"] = images_delete_summary(
            project=project, image_ids=form.cleaned_data["image_ids"]
        )
    else:
        extra["delete_report"] = image_services.images_delete(
            project=project, image_ids=form.cleaned_data["image_ids"], user=request.user
        )
    context = {"project": project, "can_manage": True, **_grid_context(request, project), **extra}
    if not request.htmx and "delete_report" in extra:  # no JavaScript: back to the page
        report = extra["delete_report"]
        messages.success(request, f"{len(report.deleted)} image(s) deleted.")
        for _, name, who in report.held:
            messages.warning(request, f"{name} was not deleted: {who} is reviewing it.")
        return redirect(project.get_absolute_url() + _suffix(context["grid_query"]))
    return render(request, "labeling/project_detail.html#grid", context, status=status)


@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, project_id: int) -> HttpResponse:
    """Members and pending invitations (managers). POST `remove` / `revoke` an id, or the form:
    a user name or an e-mail address with a role (services.invitations.member_add). A new
    invitation's link is shown once, in this answer (never stored, never in a redirect)."""
    project, _ = project_for_user(request.user, project_id, manage=True)
    form = MemberForm(request.POST or None)
    added = None
    if request.method == "POST":
        if "remove" in request.POST:
            try:
                membership_remove(project=project, membership_id=request.POST.get("remove"))
            except ValueError as exc:
                messages.error(request, str(exc))
            return redirect("project-members", project_id=project.pk)
        if "revoke" in request.POST:
            if invitation_revoke(project=project, invitation_id=request.POST.get("revoke")):
                messages.success(request, "The invitation was revoked: its link no longer works.")
            else:
                messages.error(request, "No such pending invitation.")
            return redirect("project-members", project_id=project.pk)
        if form.is_valid():
            try:
                added = member_add(
                    project=project,
                    identifier=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                    build_url=request.build_absolute_uri,
                )
            except ValueError as exc:
                form.add_error("role", str(exc))
            except ValidationError as exc:
                form.add_error("username", exc)
            else:
                if added.membership is not None:
                    name = added.membership.user.get_username()
                    state = "now" if added.changed else "already"
                    messages.success(
                        request, f"{name} is {state} {role_phrase(added.membership.role)} of {project.name}."
                    )
                    return redirect("project-members", project_id=project.pk)
                form = MemberForm()
    context = {
        "project": project,
        "members": member_list(project=project),
        "invitations": invitation_list(project=project),
        "form": form,
        "roles": Membership.Role,
        "added": added,
        "invitation_days": settings.LABELGPT_INVITATION_DAYS,
        "tab": "members",
    }
    failed = request.method == "POST" and added is None
    return render(request, "labeling/project_members.html", context, status=400 if failed else 200)
