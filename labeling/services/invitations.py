"""Members by user name or e-mail, and invitations (issue 14).

A manager adds a person by user name or e-mail address with a role: an active account with that
name (or, for an address, that e-mail) becomes a member at once; an address that matches nobody
gets an invitation, a single-use link.

The link's token is `signing.dumps([invitation id, secret])`: signed with SECRET_KEY (a tampered
token fails the signature) and holding a 256-bit random secret whose sha256 alone is stored
(`Invitation.token_hash`), compared with `hmac.compare_digest` (constant time). The invitation
expires at `expires_at` (LABELGPT_INVITATION_DAYS after it was made), is used once (accepted_at,
set under the row's lock) and can be revoked. Opening a bad link (a tampered or unknown token)
counts against the client's address in the cache; past LABELGPT_INVITATION_FAILURE_LIMIT within
AXES_COOLOFF_TIME every link from that address answers 429 until the window ends. With 256 bits
of secret nobody guesses a link; the limit only keeps scanners from hammering the page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from ..models import Invitation, Membership, Project
from ..selectors.projects import invitation_list
from .projects import membership_set

SALT = "labeling.invitation"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class InvitationError(Exception):
    """A link that cannot be used: `status` is the HTTP answer (400 bad link, 410 gone, 429 too
    many bad links, 409 a conflict), the message the reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


BAD_LINK = "This invitation link is not valid: it was changed or cut short. Ask for a new one."
USED = "This invitation has already been used."
REVOKED = "This invitation was revoked by a manager of the project."
EXPIRED = "This invitation has expired. Ask a manager of the project for a new one."
TOO_MANY = "Too many invalid invitation links from this address: try again later."


def mail_configured() -> bool:
    """Whether the site can send mail: an SMTP host, or a backend other than SMTP (console,
    file, locmem: development and tests)."""
    return bool(settings.EMAIL_HOST) or settings.EMAIL_BACKEND != SMTP_BACKEND


def role_phrase(role: str) -> str:
    """ "an annotator", "a manager": the role with its article, for messages."""
    name = Membership.Role(role).label.lower()
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Adding a member ------------------------------------------------------------------------------


@dataclass
class MemberAdded:
    """What member_add did: a membership (`changed` False when the user already had the role),
    or an invitation with its link (`url`, shown once) and whether it was mailed."""

    membership: Membership | None = None
    changed: bool = False
    invitation: Invitation | None = None
    url: str = ""
    mailed: bool = False
    mail_error: str = ""


def _active_user(identifier: str):
    """The active user named `identifier`, else (for an address) the one with that e-mail.
    ValidationError when the address names several accounts or an inactive one."""
    users = get_user_model().objects
    user = users.filter(username=identifier, is_active=True).first()
    if user is not None or "@" not in identifier:
        return user
    matches = list(users.filter(email__iexact=identifier)[:2])
    if len(matches) > 1:
        raise ValidationError("Several accounts have this e-mail address: give the user name instead.")
    if matches and not matches[0].is_active:
        raise ValidationError("The account with this e-mail address is inactive.")
    return matches[0] if matches else None


def member_add(
    *, project: Project, identifier: str, role: str, invited_by, build_url: Callable[[str], str]
) -> MemberAdded:
    """Add the person named by `identifier` (a user name or an e-mail address) with `role`.
    An existing active user: the membership (membership_set: ValueError for the last manager).
    An address that matches no account: an invitation (invitation_create). Anything else:
    ValidationError with the reason. `build_url` makes the link absolute (the request's)."""
    identifier = identifier.strip()
    role = Membership.Role(role)
    user = _active_user(identifier)
    if user is not None:
        with transaction.atomic():
            previous = project.memberships.filter(user=user).values_list("role", flat=True).first()
            membership = membership_set(project=project, user=user, role=role)
        return MemberAdded(membership=membership, changed=previous != role)
    if "@" not in identifier:
        raise ValidationError(f'No active user named "{identifier[:150]}".')
    try:
        email = get_user_model().objects.normalize_email(identifier)
        Invitation._meta.get_field("email").run_validators(email)
    except ValidationError:
        raise ValidationError(
            f'"{identifier[:150]}" is neither a user name nor a valid e-mail address.'
        ) from None
    invitation, token = invitation_create(project=project, email=email, role=role, invited_by=invited_by)
    url = build_url(reverse("invitation-accept", kwargs={"token": token}))
    added = MemberAdded(invitation=invitation, url=url)
    if mail_configured():
        try:
            invitation_mail(invitation=invitation, url=url)
        except OSError as exc:  # smtplib's errors are OSErrors: the link is still shown
            added.mail_error = (
                f"The e-mail could not be sent ({exc.__class__.__name__}): send the link yourself."
            )
        else:
            added.mailed = True
    return added


# Invitations ----------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(*, project: Project, email: str, role: str, invited_by) -> tuple[Invitation, str]:
    """A new invitation and its token (the link's last part; only its hash is stored). An
    earlier pending invitation of the same address to this project is revoked: one link works."""
    now = timezone.now()
    invitation_list(project=project).filter(email__iexact=email).update(revoked_at=now)
    secret = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        project=project,
        email=email,
        role=Membership.Role(role),
        token_hash=_hash(secret),
        invited_by=invited_by if invited_by is not None and invited_by.is_authenticated else None,
        expires_at=now + timedelta(days=settings.LABELGPT_INVITATION_DAYS),
    )
    return invitation, signing.dumps([invitation.pk, secret], salt=SALT)


def invitation_mail(*, invitation: Invitation, url: str) -> None:
    """Mail the link to the invitee (Django's email settings)."""
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "A manager"
    expires = timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    send_mail(
        subject=f"Invitation to {invitation.project.name} on LabelGPT",
        message=(
            f"{inviter} invites you to join the project {invitation.project.name} on LabelGPT as "
            f"{role_phrase(invitation.role)}.\n\nOpen this link to choose a user name and a password "
            f"(it works once, until {expires}):\n\n{url}\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_revoke(*, project: Project, invitation_id) -> bool:
    """Revoke a pending invitation of the project (False: no such pending invitation)."""
    if not str(invitation_id).isdigit():
        return False
    return invitation_list(project=project).filter(pk=invitation_id).update(revoked_at=timezone.now()) == 1


def _failure_key(address: str) -> str:
    return f"invitation-bad-links:{address}"


def _window_seconds() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds()))


def _record_failure(address: str) -> None:
    key = _failure_key(address)
    cache.add(key, 0, timeout=_window_seconds())
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=_window_seconds())


def invitation_open(*, token: str, address: str) -> Invitation:
    """The invitation a link names, still usable; InvitationError otherwise (400 a tampered or
    unknown token, which counts against `address`; 410 used, revoked or expired; 429 when
    `address` has opened too many bad links lately)."""
    if (cache.get(_failure_key(address)) or 0) >= settings.LABELGPT_INVITATION_FAILURE_LIMIT:
        raise InvitationError(TOO_MANY, 429)
    try:
        invitation_id, secret = signing.loads(token, salt=SALT)
        invitation = Invitation.objects.select_related("project").filter(pk=int(invitation_id)).first()
        valid = invitation is not None and hmac.compare_digest(invitation.token_hash, _hash(str(secret)))
    except (signing.BadSignature, TypeError, ValueError):
        valid = False
    if not valid:
        _record_failure(address)
        raise InvitationError(BAD_LINK, 400)
    _check_usable(invitation)
    return invitation


def _check_usable(invitation: Invitation) -> None:
    if invitation.accepted_at is not None:
        raise InvitationError(USED, 410)
    if invitation.revoked_at is not None:
        raise InvitationError(REVOKED, 410)
    if invitation.expires_at <= timezone.now():
        raise InvitationError(EXPIRED, 410)


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """`user` takes the invitation: a member of its project with its role, the invitation used.
    The row is locked and checked again (two tabs, one link: one wins, the other gets 410)."""
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _check_usable(locked)
    try:
        membership = membership_set(project=invitation.project, user=user, role=locked.role)
    except ValueError as exc:  # the last manager would become an annotator
        raise InvitationError(str(exc), 409) from exc
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_signup(*, invitation: Invitation, username: str, password: str):
    """A new account (the invitation's e-mail, the chosen name and password, already validated by
    the form) that takes the invitation; all or nothing. ValidationError when the name was taken
    meanwhile (between the form's check and this insert)."""
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=username, email=invitation.email, password=password
            )
    except IntegrityError:
        raise ValidationError("This user name is taken: choose another one.") from None
    invitation_accept(invitation=invitation, user=user)
    return user
