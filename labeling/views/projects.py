"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
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
from labeling.selectors.projects import class_list, member_list, projects_of_user
from labeling.services import images as image_services
from labeling.services.projects import membership_remove, membership_set, project_save
from labeling.views.imports import import_context
from labeling.views.prelabel import jobs_context

from ..access import can_create_projects, can_manage, project_for_user
from ..forms import (
    GridPageForm,
    ImagesDeleteForm,
    MemberForm,
    PrelabelForm,
    ProjectForm,
    UploadForm,
    label_class_formset,
)
from ..models import Image, Membership, Project
from .shared import project_panel_view

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


def _project_form_page(request: HttpRequest, project: Project | None) -> HttpResponse:
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
        "labeling/project_form.html",
        {"form": form, "formset": formset, "project": project, "creating": creating},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    if not can_create_projects(request.user):
        raise PermissionDenied("You may not create projects; ask an administrator.")
    return _project_form_page(request, None)


@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = project_for_user(request.user, project_id, manage=True)
    return _project_form_page(request, project)


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
    project, role = project_for_user(request.user, project_id)
    context = {
        "project": project,
        "role": role,
        "can_manage": can_manage(role),
        "classes": list(class_list(project=project)),
        "upload_form": UploadForm(),
        "prelabel_form": PrelabelForm(project=project),
        **jobs_context(project),
        **import_context(),
        **_grid_context(request, project),
    }
    return render(request, "labeling/project_detail.html", context)


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
    project, _ = project_for_user(request.user, project_id, manage=True)
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        if "remove" in request.POST:
            try:
                membership_remove(project=project, membership_id=request.POST.get("remove"))
            except ValueError as exc:
                messages.error(request, str(exc))
            return redirect("project-members", project_id=project.pk)
        if form.is_valid():
            try:
                membership_set(
                    project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"]
                )
            except ValueError as exc:
                form.add_error("role", str(exc))
            else:
                messages.success(
                    request, f"{form.cleaned_data['username']} is now a {form.cleaned_data['role']}."
                )
                return redirect("project-members", project_id=project.pk)
    members = member_list(project=project)
    return render(
        request,
        "labeling/project_members.html",
        {"project": project, "members": members, "form": form, "roles": Membership.Role},
        status=400 if request.method == "POST" else 200,
    )
