"""Invitations in a real browser (issue 14): a manager invites an e-mail address on the Members
page, copies the link shown once, logs out; the invitee opens it, picks a user name and a password,
lands in the project and opens the review page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from labeling.models import Invitation, Membership
from tests.e2e.browser import wait_for_review

NEW_PASSWORD = "a-long-new-pass-phrase"


def test_an_invitee_sets_a_password_lands_in_the_project_and_reviews(
    page, login, seeded, screenshot, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    project = seeded.project
    login(page, seeded.manager)
    page.goto(f"/projects/{project.pk}/members/")
    page.fill("input[name=username]", "newbie@example.com")
    page.select_option("select[name=role]", "annotator")
    page.get_by_role("button", name="Add").click()

    link = page.locator("#invitation-url").input_value()
    assert re.fullmatch(r"http://[^/]+/invitations/[^/]+/", link)
    expect(page.locator("#invitation-link")).to_contain_text("It was also e-mailed to newbie@example.com")
    expect(page.locator("#invitations")).to_contain_text("newbie@example.com")
    expect(page.locator("#invitations")).to_contain_text("maria")
    screenshot(page, "members-invitation")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/(login|logout)/"))

    page.goto(link)
    page.wait_for_url(re.compile(r"/invitations/join/$"))  # the token leaves the address bar
    expect(page.locator("h1")).to_have_text(f"Join “{project.name}”")
    page.fill("input[name=username]", "newbie")
    page.fill("input[name=password1]", NEW_PASSWORD)
    page.fill("input[name=password2]", NEW_PASSWORD)
    page.get_by_role("button", name="Create my account and join").click()

    page.wait_for_url(re.compile(rf"/projects/{project.pk}/$"))
    expect(page.locator(".messages")).to_contain_text(
        f"Welcome, newbie: you are an annotator of {project.name}."
    )
    expect(page.locator("header nav")).to_contain_text("newbie")
    page.get_by_role("link", name="Review", exact=True).click()  # the project's Review tab
    page.locator("#start-reviewing").click()
    page.wait_for_url(re.compile(r"/images/\d+/review/"))
    wait_for_review(page)
    invitation = Invitation.objects.get()
    assert invitation.accepted_by.username == "newbie"
    assert Membership.objects.get(project=project, user=invitation.accepted_by).role == "annotator"

    # The link works once.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/(login|logout)/"))
    response = page.goto(link)
    assert response.status == 410
    expect(page.locator("main")).to_contain_text("This invitation has already been used.")
