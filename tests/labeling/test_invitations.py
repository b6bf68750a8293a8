"""Members by user name or e-mail and invitations (issue 14): the services, the Members page, the
invitation link's page and the API."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.forms import InvitationSignupForm
from labeling.models import Invitation, Membership
from labeling.services.invitations import (
    InvitationError,
    invitation_accept,
    invitation_create,
    invitation_open,
    invitation_revoke,
    invitation_signup,
    member_add,
    role_phrase,
)
from tests.conftest import PASSWORD, make_user

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"
ADDRESS = "10.0.0.1"
NEW_PASSWORD = "a-long-new-pass-phrase"


def build_url(path: str) -> str:
    return f"http://testserver{path}"


def add(project, identifier: str, role: str = "annotator", by=None):
    return member_add(project=project, identifier=identifier, role=role, invited_by=by, build_url=build_url)


def token_of(url: str) -> str:
    return re.search(r"/invitations/([^/]+)/$", url).group(1)


def form_login(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def members_url(project) -> str:
    return reverse("project-members", kwargs={"project_id": project.pk})


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def no_mail(settings):
    settings.EMAIL_BACKEND = SMTP
    settings.EMAIL_HOST = ""


# Services ---------------------------------------------------------------------------------------


def test_role_phrases_take_the_right_article():
    assert role_phrase("annotator") == "an annotator"
    assert role_phrase("manager") == "a manager"


def test_an_email_without_an_account_makes_an_invitation_whose_hash_alone_is_stored(
    project, manager, no_mail
):
    added = add(project, "Newbie@Example.com", "manager", by=manager)
    invitation = added.invitation
    assert added.membership is None and not added.mailed
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "Newbie@example.com",
        "manager",
        manager,
    )
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=7)
    token = token_of(added.url)
    _, secret = signing.loads(token, salt="labeling.invitation")
    assert secret not in invitation.token_hash and token not in invitation.token_hash
    assert len(invitation.token_hash) == 64
    assert invitation_open(token=token, address=ADDRESS) == invitation


def test_the_expiry_is_a_setting(project, manager, settings):
    settings.LABELGPT_INVITATION_DAYS = 2
    invitation, _ = invitation_create(
        project=project, email="x@example.com", role="annotator", invited_by=manager
    )
    assert timedelta(days=1, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=2)


def test_an_email_of_an_existing_user_makes_the_membership_directly(project, outsider):
    outsider.email = "olga@example.com"
    outsider.save()
    added = add(project, "OLGA@example.com")
    assert added.invitation is None and added.changed
    assert added.membership.user == outsider and added.membership.role == "annotator"
    assert not Invitation.objects.exists()


def test_a_user_name_adds_and_a_second_time_says_already(project, outsider):
    assert add(project, " olga ").changed
    again = add(project, "olga")
    assert not again.changed and again.membership.role == "annotator"
    assert Membership.objects.filter(project=project, user=outsider).count() == 1


def test_an_unknown_name_or_a_bad_address_is_refused(project):
    with pytest.raises(ValidationError, match='No active user named "ghost"'):
        add(project, "ghost")
    with pytest.raises(ValidationError, match="neither a user name nor a valid e-mail"):
        add(project, "not@an address")
    assert not Invitation.objects.exists()


def test_an_address_of_an_inactive_account_is_refused(project, outsider):
    outsider.email, outsider.is_active = "olga@example.com", False
    outsider.save()
    with pytest.raises(ValidationError, match="inactive"):
        add(project, "olga@example.com")


def test_accepting_makes_the_member_and_the_link_works_once(project, manager):
    invitation, token = invitation_create(
        project=project, email="n@example.com", role="annotator", invited_by=manager
    )
    user = invitation_signup(
        invitation=invitation_open(token=token, address=ADDRESS), username="newbie", password=NEW_PASSWORD
    )
    assert user.email == "n@example.com" and user.check_password(NEW_PASSWORD)
    assert Membership.objects.get(project=project, user=user).role == "annotator"
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    with pytest.raises(InvitationError, match="already been used") as used:
        invitation_open(token=token, address=ADDRESS)
    assert used.value.status == 410
    # Even with the row read before it was used (two tabs), the second accept is refused.
    with pytest.raises(InvitationError) as second:
        invitation_accept(invitation=invitation, user=make_user("other"))
    assert second.value.status == 410


def test_an_expired_invitation_is_gone(project, manager):
    invitation, token = invitation_create(
        project=project, email="n@example.com", role="annotator", invited_by=manager
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationError, match="expired") as gone:
        invitation_open(token=token, address=ADDRESS)
    assert gone.value.status == 410


def test_a_revoked_invitation_is_gone_and_a_new_one_replaces_the_old(project, manager):
    _first, first_token = invitation_create(
        project=project, email="n@example.com", role="annotator", invited_by=manager
    )
    second, second_token = invitation_create(
        project=project, email="N@example.com", role="manager", invited_by=manager
    )
    with pytest.raises(InvitationError, match="revoked"):
        invitation_open(token=first_token, address=ADDRESS)
    assert invitation_open(token=second_token, address=ADDRESS) == second
    assert invitation_revoke(project=project, invitation_id=second.pk)
    assert not invitation_revoke(project=project, invitation_id=second.pk)  # no longer pending
    assert not invitation_revoke(project=project, invitation_id="x")
    with pytest.raises(InvitationError, match="revoked") as gone:
        invitation_open(token=second_token, address=ADDRESS)
    assert gone.value.status == 410


def test_tampered_tokens_are_bad_links_and_too_many_lock_the_address_out(project, manager, settings):
    settings.LABELGPT_INVITATION_FAILURE_LIMIT = 3
    invitation, token = invitation_create(
        project=project, email="n@example.com", role="annotator", invited_by=manager
    )
    _, secret = signing.loads(token, salt="labeling.invitation")
    forged_secret = signing.dumps(
        [invitation.pk, secret[:-1] + ("A" if secret[-1] != "A" else "B")], salt="x"
    )
    for bad in (
        token[:-2] + "xx",
        forged_secret,
        signing.dumps([invitation.pk, "guess"], salt="labeling.invitation"),
    ):
        with pytest.raises(InvitationError, match="not valid") as refused:
            invitation_open(token=bad, address=ADDRESS)
        assert refused.value.status == 400
    # The address is locked out, even for the right link; another address is not.
    with pytest.raises(InvitationError, match="Too many") as locked:
        invitation_open(token=token, address=ADDRESS)
    assert locked.value.status == 429
    assert invitation_open(token=token, address="10.0.0.2") == invitation


def test_a_logged_in_user_accepts_for_their_account_and_keeps_the_last_manager(project, manager, annotator):
    _invitation, token = invitation_create(
        project=project, email="a@example.com", role="manager", invited_by=manager
    )
    invitation_accept(invitation=invitation_open(token=token, address=ADDRESS), user=annotator)
    assert Membership.objects.get(project=project, user=annotator).role == "manager"
    # The only manager accepting an annotator's invitation would leave no manager: 409.
    Membership.objects.filter(project=project, user=annotator).update(role="annotator")
    demote, _demote_token = invitation_create(
        project=project, email="m@example.com", role="annotator", invited_by=manager
    )
    with pytest.raises(InvitationError, match="at least one manager") as conflict:
        invitation_accept(invitation=demote, user=manager)
    assert conflict.value.status == 409
    demote.refresh_from_db()
    assert demote.accepted_at is None


# The Members page -------------------------------------------------------------------------------


def test_a_manager_adds_by_name_in_proper_english(client_for, manager, outsider, project):
    client = client_for(manager)
    response = client.post(members_url(project), {"username": "olga", "role": "annotator"})
    assert response.status_code == 302
    assert "olga is now an annotator of Kitchen." in messages_of(response)
    response = client.post(members_url(project), {"username": "olga", "role": "manager"})
    assert "olga is now a manager of Kitchen." in messages_of(response)
    response = client.post(members_url(project), {"username": "olga", "role": "manager"})
    assert "olga is already a manager of Kitchen." in messages_of(response)


def test_a_manager_invites_by_email_sees_the_link_once_and_revokes(client_for, manager, project, settings):
    settings.EMAIL_BACKEND = LOCMEM
    client = client_for(manager)
    response = client.post(members_url(project), {"username": "new@example.com", "role": "annotator"})
    assert response.status_code == 200
    body = response.content.decode()
    link = re.search(r'id="invitation-url" value="(http://testserver/invitations/[^"]+/)"', body).group(1)
    assert "It was also e-mailed to new@example.com" in body
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body and mail.outbox[0].to == ["new@example.com"]
    assert "as an annotator" in mail.outbox[0].body
    page = client.get(members_url(project)).content.decode()
    assert link not in page  # shown once
    invitation = Invitation.objects.get()
    assert "new@example.com" in page and "Annotator" in page and "manny" in page
    revoked = client.post(members_url(project), {"revoke": str(invitation.pk)})
    assert "The invitation was revoked: its link no longer works." in messages_of(revoked)
    assert "No pending invitations." in client.get(members_url(project)).content.decode()
    gone = client.get(link)
    assert gone.status_code == 410 and "revoked" in gone.content.decode()


def test_without_mail_settings_the_page_says_to_send_the_link(client_for, manager, project, no_mail):
    response = client_for(manager).post(
        members_url(project), {"username": "new@example.com", "role": "manager"}
    )
    assert "does not send e-mail: send the link yourself" in response.content.decode()
    assert mail.outbox == []
    assert Invitation.objects.get().role == "manager"


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_and_outsiders_cannot_add_or_invite(client_for, request, project, who):
    user = request.getfixturevalue(who)
    response = client_for(user).post(members_url(project), {"username": "x@example.com", "role": "manager"})
    assert response.status_code == (403 if who == "annotator" else 404)
    assert not Invitation.objects.exists()


def test_staff_can_invite(client_for, admin_user, project, no_mail):
    response = client_for(admin_user).post(
        members_url(project), {"username": "x@example.com", "role": "annotator"}
    )
    assert response.status_code == 200 and Invitation.objects.get().invited_by == admin_user


# The invitation link's page ---------------------------------------------------------------------


def test_the_invitee_picks_a_name_and_password_and_lands_in_the_project(client, project, manager):
    _, token = invitation_create(project=project, email="n@example.com", role="annotator", invited_by=manager)
    link = reverse("invitation-accept", kwargs={"token": token})
    opened = client.get(link)  # the token goes into the session, out of the URL
    url = reverse("invitation-join")
    assert opened.status_code == 302 and opened["Location"] == url
    page = client.get(url)
    assert page.status_code == 200 and "Choose a user name and a password" in page.content.decode()
    assert token not in page.content.decode()
    weak = client.post(url, {"username": "newbie", "password1": "123", "password2": "123"})
    assert weak.status_code == 400 and "This password is too short" in weak.content.decode()
    taken = client.post(url, {"username": "ANNA", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert taken.status_code == 400 and "This user name is taken" in taken.content.decode()
    response = client.post(url, {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    assert "Welcome, newbie: you are an annotator of Kitchen." in messages_of(response)
    assert client.get(project.get_absolute_url()).status_code == 200  # logged in, a member
    assert client.get(url).status_code == 400  # the session no longer holds it
    client.logout()
    used = client.get(link)
    assert used.status_code == 410 and "already been used" in used.content.decode()
    assert form_login(client, "newbie", NEW_PASSWORD).status_code == 302


def test_a_logged_in_user_joins_with_their_account(client_for, project, manager, outsider):
    _, token = invitation_create(project=project, email="o@example.com", role="annotator", invited_by=manager)
    client = client_for(outsider)
    url = reverse("invitation-accept", kwargs={"token": token})
    assert "Join as olga" in client.get(url, follow=True).content.decode()
    response = client.post(reverse("invitation-join"), {"accept": "1"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=outsider).role == "annotator"
    assert get_user_model().objects.count() == 3  # no new account


@pytest.mark.parametrize("token", ["garbage", "a:b:c", "W1siMSIsICJ4Il0:1:x"])
def test_a_tampered_link_is_a_400_page_never_a_500(client, project, token):
    response = client.get(reverse("invitation-accept", kwargs={"token": token}))
    assert response.status_code == 400
    assert "This invitation link is not valid" in response.content.decode()


def test_an_expired_link_is_a_410_page(client, project, manager):
    invitation, token = invitation_create(
        project=project, email="n@example.com", role="annotator", invited_by=manager
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))
    url = reverse("invitation-accept", kwargs={"token": token})
    assert client.get(url).status_code == 410
    # Expired after the link was opened (the form was left open): the form's answer says so too.
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert client.get(url).status_code == 302
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))
    late = client.post(
        reverse("invitation-join"), {"username": "n", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert late.status_code == 410 and "expired" in late.content.decode()
    assert "No invitation is open" in client.get(reverse("invitation-join")).content.decode()
    assert not get_user_model().objects.filter(username="n").exists()


def test_the_join_page_without_an_opened_link_says_so(client):
    response = client.get(reverse("invitation-join"))
    assert response.status_code == 400
    assert "No invitation is open in this browser" in response.content.decode()


def test_many_bad_links_from_one_address_answer_429(client, project, settings):
    settings.LABELGPT_INVITATION_FAILURE_LIMIT = 2
    codes = [
        client.get(reverse("invitation-accept", kwargs={"token": f"bad{i}"})).status_code for i in range(3)
    ]
    assert codes == [400, 400, 429]


# The API ----------------------------------------------------------------------------------------


def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_members(project) -> str:
    return f"/api/v1/projects/{project.pk}/members/"


def test_the_api_adds_an_existing_user_by_email(project, manager, outsider):
    outsider.email = "olga@example.com"
    outsider.save()
    response = api_client(manager).post(
        api_members(project), {"email": "olga@example.com", "role": "annotator"}, format="json"
    )
    assert response.status_code == 200 and response.json()["username"] == "olga"


def test_the_api_invites_an_unknown_email_and_answers_the_link_once(project, manager, settings, client):
    settings.EMAIL_BACKEND = LOCMEM
    response = api_client(manager).post(
        api_members(project), {"email": "n@example.com", "role": "manager"}, format="json"
    )
    assert response.status_code == 201
    data = response.json()
    assert (data["email"], data["role"], data["invited_by"], data["mailed"]) == (
        "n@example.com",
        "manager",
        "manny",
        True,
    )
    assert data["link"].startswith("http://testserver/invitations/")
    listed = api_client(manager).get(api_members(project)).json()
    assert "link" not in str(listed)
    page = client.get(data["link"].removeprefix("http://testserver"), follow=True)
    assert page.status_code == 200 and "Join" in page.content.decode()


def test_the_api_takes_an_email_in_username_too_and_refuses_both_or_neither(project, manager, no_mail):
    client = api_client(manager)
    assert (
        client.post(
            api_members(project), {"username": "x@example.com", "role": "annotator"}, format="json"
        ).status_code
        == 201
    )
    for body in ({"role": "annotator"}, {"username": "anna", "email": "a@example.com", "role": "annotator"}):
        refused = client.post(api_members(project), body, format="json")
        assert refused.status_code == 400 and "either username or email" in refused.json()["error"]
    unknown = client.post(api_members(project), {"username": "ghost", "role": "annotator"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"] == 'No active user named "ghost".'


def test_the_api_refuses_annotators_and_outsiders(project, annotator, outsider):
    for user, code in ((annotator, 403), (outsider, 404)):
        response = api_client(user).post(
            api_members(project), {"email": "n@example.com", "role": "manager"}, format="json"
        )
        assert response.status_code == code
    assert not Invitation.objects.exists()


def test_the_schema_documents_the_invitation_answer(client_for, admin_user):
    schema = client_for(admin_user).get("/api/schema/?format=json")
    text = schema.content.decode()
    assert (
        schema.status_code == 200
        and "Invitation" in text
        and "an invitation; its link is answered once" in text
    )


def test_password_login_after_signup_uses_the_new_password(client, project, manager):
    _, token = invitation_create(project=project, email="n@example.com", role="annotator", invited_by=manager)
    client.get(reverse("invitation-accept", kwargs={"token": token}))
    client.post(
        reverse("invitation-join"),
        {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    client.logout()
    assert form_login(client, "newbie", PASSWORD).status_code == 200  # the form again: refused
    assert form_login(client, "newbie", NEW_PASSWORD).status_code == 302


def test_the_api_lists_pending_invitations_without_links_and_revokes_them(project, manager, no_mail):
    client = api_client(manager)
    created = client.post(
        api_members(project), {"email": "n@example.com", "role": "annotator"}, format="json"
    ).json()
    listed = client.get(f"/api/v1/projects/{project.pk}/invitations/").json()
    assert listed["count"] == 1
    assert listed["results"][0] == {
        key: created[key] for key in ("id", "email", "role", "invited_by", "created_at", "expires_at")
    }
    url = f"/api/v1/projects/{project.pk}/invitations/{created['id']}/"
    assert client.delete(url).status_code == 204
    again = client.delete(url)
    assert again.status_code == 404 and again.json()["error"] == "No such pending invitation."
    assert client.get(f"/api/v1/projects/{project.pk}/invitations/").json()["count"] == 0
    assert Client().get(created["link"].removeprefix("http://testserver")).status_code == 410


def test_password_reset_works_with_the_console_backend(client, settings, annotator, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    annotator.email = "anna@example.com"
    annotator.save()
    response = client.post(reverse("password_reset"), {"email": "anna@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    printed = capsys.readouterr().out
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", printed).group(1)
    form_url = client.get(link)["Location"]
    done = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    assert form_login(client, "anna", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize("who", ["admin_user", "manager", "annotator", "outsider"])
def test_every_user_has_the_password_link_in_the_header(client_for, request, who):
    page = client_for(request.getfixturevalue(who)).get(reverse("project-list")).content.decode()
    assert f'href="{reverse("password_change")}"' in page


def test_the_admin_lists_invitations_read_only(client_for, admin_user, project, manager):
    invitation_create(project=project, email="n@example.com", role="annotator", invited_by=manager)
    client = client_for(admin_user)
    page = client.get(reverse("admin:labeling_invitation_changelist"))
    assert page.status_code == 200 and "n@example.com" in page.content.decode()
    assert client.get(reverse("admin:labeling_invitation_add")).status_code == 403


def test_a_name_taken_between_the_check_and_the_insert_is_a_form_error(client, project, manager, monkeypatch):
    _, token = invitation_create(project=project, email="n@example.com", role="annotator", invited_by=manager)
    client.get(reverse("invitation-accept", kwargs={"token": token}))
    real_is_valid = InvitationSignupForm.is_valid

    def valid_then_taken(form):
        valid = real_is_valid(form)
        if valid:
            make_user(form.cleaned_data["username"])  # another signup wins the race
        return valid

    monkeypatch.setattr(InvitationSignupForm, "is_valid", valid_then_taken)
    fields = {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    response = client.post(reverse("invitation-join"), fields)
    assert response.status_code == 400 and "This user name is taken" in response.content.decode()
    assert Invitation.objects.get().accepted_at is None
