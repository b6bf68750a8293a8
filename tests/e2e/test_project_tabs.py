"""The project's tabs in a real browser: each is a page of its own (the back button walks them),
the bar marks the current one, and deleting a project takes its name typed again."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from labeling.models import Image, Project
from labeling.services.projects import project_create
from tests.e2e.test_pages import add_image

TABS = ["Images", "Pre-label", "Review", "Export & import", "Prompt lab", "Settings", "Members"]
PATHS = ["", "prelabel/", "review/", "export-import/", "prompt-lab/", "settings/", "members/"]


def current_tab(page):
    return page.locator("nav.tabs a[aria-current=page]")


def test_a_manager_walks_the_tabs_with_the_back_button_then_deletes_the_project(
    page, login, creator, screenshot
):
    project = project_create(user=creator, name="Harbour", classes=[{"name": "boat"}, {"name": "buoy"}])
    for i in range(6):
        add_image(project, f"harbour-{i}.png", color=(20 * i, 90, 160))
    files = [name for pair in project.images.values_list("file", "thumbnail") for name in pair]
    login(page, creator)
    with page.expect_navigation():
        page.get_by_role("link", name="Harbour").click()
    base = rf"/projects/{project.pk}/"
    expect(page).to_have_url(re.compile(base + "$"))
    expect(current_tab(page)).to_have_text("Images")
    expect(page.locator("nav.tabs a")).to_have_text(TABS)
    expect(page.locator("#images .tile")).to_have_count(6)
    screenshot(page, "project-images-tab")

    tabs = page.locator("nav.tabs")
    for name, path in zip(TABS[1:], PATHS[1:], strict=True):
        tabs.get_by_role("link", name=name, exact=True).click()
        expect(page).to_have_url(re.compile(base + re.escape(path) + "$"))
        expect(current_tab(page)).to_have_text(name)
        expect(page.locator("h1")).to_have_text("Harbour")
    expect(page.locator("main table").first).to_contain_text(creator.get_username())  # the Members tab

    # Back through every tab, each at its own URL, then forward again.
    for name, path in reversed(list(zip(TABS[:-1], PATHS[:-1], strict=True))):
        page.go_back()
        expect(page).to_have_url(re.compile(base + re.escape(path) + "$"))
        expect(current_tab(page)).to_have_text(name)
    page.go_forward()
    expect(current_tab(page)).to_have_text("Pre-label")
    expect(page.locator("#prelabel-form")).to_be_visible()
    screenshot(page, "project-prelabel-tab")

    # Delete: a wrong name is refused and deletes nothing; the right one deletes and says so.
    tabs.get_by_role("link", name="Settings", exact=True).click()
    danger = page.locator("#delete-project")
    danger.locator("input[name=confirm_name]").fill("harbour")
    danger.get_by_role("button", name="Delete this project").click()
    expect(page.locator("#delete-project .error")).to_contain_text("does not match the project's name")
    expect(current_tab(page)).to_have_text("Settings")
    screenshot(page, "project-settings-tab-delete-refused")
    assert Project.objects.filter(pk=project.pk).exists()

    page.locator("#delete-project input[name=confirm_name]").fill("Harbour")
    page.locator("#delete-project").get_by_role("button", name="Delete this project").click()
    expect(page.locator("h1")).to_have_text("Projects")
    expect(page.locator(".messages")).to_contain_text('Project "Harbour" was deleted, with its 6 images.')
    expect(page.locator("main")).to_contain_text("No projects yet.")
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Image.objects.filter(project_id=project.pk).exists()
    storage = Image._meta.get_field("file").storage
    assert not any(storage.exists(name) for name in files)
    # The old address of the project now answers 404.
    assert page.goto(f"/projects/{project.pk}/").status == 404
    assert page.dialogs == []


def test_an_empty_project_says_what_to_do_next(page, login, creator, screenshot):
    project = Project.objects.create(name="Empty")
    project.memberships.create(user=creator, role="manager")
    login(page, creator)
    page.goto(f"/projects/{project.pk}/")
    expect(page.locator("#upload h2")).to_have_text("Upload images")
    expect(page.locator("#no-classes")).to_contain_text("This project has no classes yet.")
    screenshot(page, "project-images-tab-empty")
    page.locator("nav.tabs").get_by_role("link", name="Review", exact=True).click()
    expect(page.locator("#review-no-images")).to_contain_text("upload images first")
    expect(page.locator("#start-reviewing")).to_have_count(0)
    page.locator("#review-no-images").get_by_role("link", name="upload images first").click()
    expect(current_tab(page)).to_have_text("Images")
    page.locator("#no-classes").get_by_role("link", name="Add a class").click()
    expect(current_tab(page)).to_have_text("Settings")
    expect(page.locator("input[name=classes-0-name]")).to_be_visible()
