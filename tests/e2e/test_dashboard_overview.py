"""The dashboard's projects overview in a real browser: every managed project side by side with
its progress bar, sorting, and the link to a project's dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from labeling.models import Image, PrelabelJob
from labeling.services.projects import project_create
from tests.labeling.review_helpers import add_images


def test_the_overview_shows_each_project_sorts_and_links_to_its_dashboard(page, login, creator, screenshot):
    now = timezone.now()
    attic = project_create(user=creator, name="Attic", classes=[{"name": "box"}])
    kitchen = project_create(user=creator, name="Kitchen", classes=[{"name": "cat"}])
    add_images(
        kitchen, 3, status=Image.Status.DONE, reviewed_by=creator, reviewed_at=now - timedelta(hours=1)
    )
    add_images(kitchen, 1, status=Image.Status.NEW, start=10)
    PrelabelJob.objects.create(
        project=kitchen,
        status=PrelabelJob.Status.FAILED,
        stage=PrelabelJob.Stage.STOPPED,
        error="CUDA out of memory",
    )
    login(page, creator)
    page.goto("/dashboard/")
    rows = page.locator("#dash-overview tbody tr")
    expect(rows).to_have_count(2)
    # Most recent activity first: Kitchen's job was created after Attic (which has no activity).
    expect(rows.nth(0).locator("th a")).to_have_text("Kitchen")
    kitchen_row = page.locator(f'tr[data-project-id="{kitchen.pk}"]')
    expect(kitchen_row.locator(".reviewed-24h")).to_have_text("3")
    done_bar = kitchen_row.locator("svg.progress rect.seg-done")
    expect(done_bar).to_have_attribute("width", "75.0")
    assert (
        done_bar.bounding_box()["width"]
        > 3 * kitchen_row.locator("svg.progress rect.seg-new").bounding_box()["width"] - 2
    )
    expect(page.locator(f'tr[data-project-id="{kitchen.pk}"] .job-error')).to_have_text("CUDA out of memory")
    attic_row = page.locator(f'tr[data-project-id="{attic.pk}"]')
    expect(attic_row.locator(".job")).to_have_text("–")
    expect(attic_row.locator("svg.progress rect.seg-done")).to_have_count(0)  # no image: no segment
    screenshot(page, "dashboard-overview")

    page.get_by_role("link", name="Name").click()
    expect(page).to_have_url(re.compile(r"\?sort=name$"))
    expect(rows.nth(0).locator("th a")).to_have_text("Attic")
    expect(rows.nth(1).locator("th a")).to_have_text("Kitchen")
    rows.nth(1).locator("th a").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/projects/{kitchen.pk}/$"))
    expect(page.locator("h1")).to_have_text("Dashboard: Kitchen")
