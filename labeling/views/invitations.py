"""The invitation link's page (issue 14): reachable without a login. A visitor picks a user name
and a password (a new account, logged in, then the project); a logged-in user accepts for their
own account (the link is what the manager handed out, whoever's account takes it is recorded as
accepted_by). A bad link is a page with the reason: 400 tampered, 410 used / revoked / expired,
429 too many bad links from this address (services.invitations).

Like Django's password reset, the link's token leaves the URL at once: the link's page checks it,
keeps it in the session and redirects to the form's page (`invitation-join`), so the live token
is not in the address bar, a Referer header, or a logged URL of the form's answers."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from labeling.client_address import client_address
from labeling.services.invitations import (
    InvitationError,
    invitation_accept,
    invitation_open,
    invitation_signup,
    role_phrase,
)

from ..forms import InvitationSignupForm

LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"
SESSION_KEY = "labelgpt_invitation"  # the opened link's token
NO_LINK = "No invitation is open in this browser: open the link from your invitation again."


def _invalid(request: HttpRequest, error: InvitationError) -> HttpResponse:
    return render(request, "labeling/invitation_invalid.html", {"reason": str(error)}, status=error.status)


@login_not_required
@require_GET
def invitation_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link itself: a bad one is a page with the reason; a good one goes into the session."""
    try:
        invitation_open(token=token, address=client_address(request))
    except InvitationError as error:
        return _invalid(request, error)
    request.session[SESSION_KEY] = token
    return redirect("invitation-join")


@login_not_required
@require_http_methods(["GET", "POST"])
def invitation_join(request: HttpRequest) -> HttpResponse:
    """The invitation the session holds: a new account's form, or (logged in) the join button."""
    token = request.session.get(SESSION_KEY)
    if not token:
        return _invalid(request, InvitationError(NO_LINK, 400))
    try:
        invitation = invitation_open(token=token, address=client_address(request))
    except InvitationError as error:
        request.session.pop(SESSION_KEY, None)
        return _invalid(request, error)
    user = request.user if request.user.is_authenticated else None
    form = None
    if user is None:
        instance = get_user_model()(email=invitation.email)  # the password validators compare with it
        form = InvitationSignupForm(request.POST or None, instance=instance)
    if request.method == "POST":
        try:
            if user is not None:
                invitation_accept(invitation=invitation, user=user)
            elif form.is_valid():
                user = invitation_signup(
                    invitation=invitation,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
                login(request, user, backend=LOGIN_BACKEND)
        except InvitationError as error:
            return _invalid(request, error)
        except ValidationError as error:
            form.add_error("username", error)
        if user is not None:
            request.session.pop(SESSION_KEY, None)
            messages.success(
                request,
                f"Welcome, {user.get_username()}: you are {role_phrase(invitation.role)} of "
                f"{invitation.project.name}.",
            )
            return redirect("project-detail", project_id=invitation.project_id)
    context = {"invitation": invitation, "form": form, "role": role_phrase(invitation.role)}
    return render(
        request, "labeling/invitation_accept.html", context, status=400 if request.method == "POST" else 200
    )
