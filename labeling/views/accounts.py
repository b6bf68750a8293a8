"""Account pages around Django's auth views: the lockout answer of the failed-login limits
(django-axes calls lockout_response, settings.AXES_LOCKOUT_CALLABLE) and the password reset page,
which says to ask an administrator when the site cannot send mail."""

from __future__ import annotations

from axes.helpers import get_client_username, get_cool_off, get_lockout_message
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator

from labeling.services.invitations import mail_configured


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """429 with the reason: JSON {"error": ...} under /api/ (like every API error), otherwise the
    login page with the reason in place of the form's error."""
    message = get_lockout_message()
    cool_off = get_cool_off(request)
    retry_after = str(int(cool_off.total_seconds())) if cool_off else None
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"error": message}, status=429)
    else:
        username = get_client_username(request, credentials) or ""
        form = AuthenticationForm(request, initial={"username": username})
        next_url = request.POST.get("next", "") if request.method == "POST" else request.GET.get("next", "")
        context = {"form": form, "lockout": message, "next": next_url}
        response = render(request, "registration/login.html", context, status=429)
    if retry_after:
        response["Retry-After"] = retry_after
    return response


@method_decorator(login_not_required, name="dispatch")  # the override hides the parent's mark
class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset form (a mail with a one-time link); without mail settings, a page that says to
    ask an administrator instead of pretending to send."""

    def dispatch(self, request, *args, **kwargs):
        if not mail_configured():
            return render(request, "registration/password_reset_unavailable.html")
        return super().dispatch(request, *args, **kwargs)
