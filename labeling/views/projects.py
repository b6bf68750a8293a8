"""Pages. Views are adapters: parse input, check access, call one service or selector, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from labeling.selectors.images import ImagePage, image_page, image_status_counts
from labeling.selectors.projects import class_list, invitation_list, member_list, projects_of_user
from labeling.services.invitations import invitation_revoke, member_add, role_phrase
from labeling.services.projects import membership_remove, project_save
from labeling.views.imports import import_context
from labeling.views.prelabel import jobs_context

from ..access import can_create_projects, can_manage, project_for_user
from ..forms import GridPageForm, MemberForm, PrelabelForm, ProjectForm, UploadForm, label_class_formset
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


def _grid_context(request: HttpRequest, project: Project) -> dict:
    """The image grid's page (keyset: see GridPageForm) with its pager links, and the status
    tabs' counts."""
    query = GridPageForm(request.GET).page_query()
    status = query.pop("status")
    page = image_page(project=project, size=IMAGES_PER_PAGE, status=status or None, **query)
    counts = image_status_counts(project=project)
    statuses = [(value, label, counts[value]) for value, label in Image.Status.choices]
    return {
        "page": page,
        "status": status,
        "statuses": statuses,
        "counts": counts,
        "total": counts[status] if status else counts["all"],
        "grid_query": _grid_query(status, **query),
        "pager": _pager_links(project, status, page),
    }


def _grid_query(status: str, **cursor) -> str:
    """The grid's query string (without "?"): the status, then the cursor if any."""
    query = {"status": status, **cursor, "last": 1 if cursor.get("last") else None}
    return urlencode({name: value for name, value in query.items() if value not in ("", None)})


def _pager_links(project: Project, status: str, page: ImagePage) -> list[dict]:
    """First / Previous / Next / Last: each with its page URL (href, pushed to the history) and
    its grid partial URL (hx-get), or none where that way holds no image."""
    detail = project.get_absolute_url()
    grid = reverse("project-images", kwargs={"project_id": project.pk})
    ways = [
        ("first", "« First", page.has_previous, {}),
        ("prev", "‹ Previous", page.has_previous, {"before": page.first_id}),
        ("next", "Next ›", page.has_next, {"after": page.last_id}),
        ("last", "Last »", page.has_next, {"last": 1}),
    ]
    links = []
    for rel, label, enabled, cursor in ways:
        query = _grid_query(status, **cursor)
        suffix = f"?{query}" if query else ""
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
    """The image grid alone (htmx: filter and page without reloading the page)."""
    return render(
        request, "labeling/project_detail.html#grid", {"project": project, **_grid_context(request, project)}
    )


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
    }
    failed = request.method == "POST" and added is None
    return render(request, "labeling/project_members.html", context, status=400 if failed else 200)
