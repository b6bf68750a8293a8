"""The pages in a real browser: log in, create a project, upload, filter, access, escaping."""

from __future__ import annotations

import io
import re

from playwright.sync_api import expect

from labeling.models import Image, Membership, Project
from labeling.services.images import images_ingest
from labeling.services.projects import project_create
from labeling.views import projects as project_views
from tests.conftest import image_bytes, make_user
from tests.labeling.review_helpers import add_images

XSS_NAME = '"><img src=x onerror=alert(1)>'
THUMBNAIL_URL = re.compile(r"^/images/\d+/thumbnail/$")


def add_image(project, name: str, color=(200, 30, 30), status: str = Image.Status.NEW) -> Image:
    report = images_ingest(project=project, files=[(name, io.BytesIO(image_bytes(color=color)))])
    image = Image.objects.get(pk=report.created[0][1])
    if status != Image.Status.NEW:
        Image.objects.filter(pk=image.pk).update(status=status)
    return image


def grid_names(page) -> list[str]:
    return page.locator("#images .tile .name").all_inner_texts()


def test_a_manager_logs_in_and_creates_a_project_with_two_classes(page, login, creator, screenshot):
    login(page, creator)
    page.get_by_role("link", name="New project").click()
    expect(page.locator("h1")).to_have_text("New project")

    page.fill("input[name=name]", "Street scenes")
    page.fill("textarea[name=description]", "Dashcam frames from the city centre.")
    page.fill("input[name=classes-0-name]", "car")
    page.fill("input[name=classes-1-name]", "traffic light")
    page.fill("input[name=classes-1-prompt]", "a traffic light on a pole")
    page.get_by_role("button", name="Create project").click()

    expect(page.locator("h1")).to_have_text("Street scenes")
    expect(page.locator(".messages")).to_contain_text('Project "Street scenes" created.')
    expect(page.locator(".class-chips .chip strong")).to_have_text(["car", "traffic light"])
    expect(page.locator(".class-chips")).to_contain_text("“a traffic light on a pole”")
    project = Project.objects.get(name="Street scenes")
    assert list(project.classes.values_list("name", "prompt")) == [
        ("car", "car"),
        ("traffic light", "a traffic light on a pole"),
    ]
    # Each new row starts with its own palette color, so the classes can be told apart.
    colors = list(project.classes.values_list("color", flat=True))
    assert len(set(colors)) == 2, f"both classes got the same color: {colors}"
    assert project.memberships.get().user == creator
    assert project.memberships.get().role == Membership.Role.MANAGER

    page.get_by_role("link", name="Projects", exact=True).click()
    expect(page.locator(".project-cards h2")).to_have_text(["Street scenes"])
    expect(page.locator(".project-cards")).to_contain_text("0 images")
    screenshot(page, "project-list")


def test_upload_reports_the_refused_file_and_the_grid_shows_the_thumbnail(page, login, creator, screenshot):
    project = project_create(user=creator, name="Kitchen", classes=[{"name": "cat"}, {"name": "cup"}])
    login(page, creator)
    with page.expect_navigation():  # waits for "load": htmx has taken over the upload form
        page.get_by_role("link", name="Kitchen").click()
    expect(page.locator("#images")).to_contain_text("No images yet.")

    page.set_input_files(
        "#upload-form input[type=file]",
        [
            {"name": "red.png", "mimeType": "image/png", "buffer": image_bytes(size=(640, 480))},
            {"name": "notes.txt", "mimeType": "image/png", "buffer": b"these are not pixels\n" * 20},
        ],
    )
    page.get_by_role("button", name="Upload").click()

    report = page.locator("#upload-report .report")
    expect(report).to_contain_text("1 added")
    expect(report).to_contain_text("1 refused")
    expect(report.locator("ul.errors li")).to_have_count(1)
    expect(report.locator("ul.errors li code")).to_have_text("notes.txt")
    expect(report.locator("ul.errors li")).to_contain_text("Not an image")
    # The upload triggers "images-changed": the grid reloads with the new image.
    expect(page.locator("#images .tile")).to_have_count(1)
    thumbnail = page.locator("#images .tile img")
    expect(thumbnail).to_have_attribute("alt", "red.png")
    assert THUMBNAIL_URL.match(thumbnail.get_attribute("src"))
    thumbnail.scroll_into_view_if_needed()
    # The thumbnail really loads through the access-checked URL (320 px wide: the thumbnail size).
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 240]
    assert project.images.get().original_name == "red.png"
    screenshot(page, "project-after-upload")


def test_status_links_filter_the_grid_in_place(page, login, creator):
    project = project_create(user=creator, name="Birds", classes=[{"name": "bird"}])
    add_image(project, "fresh.png", color=(10, 200, 10))
    add_image(project, "finished.png", color=(10, 10, 200), status=Image.Status.DONE)
    login(page, creator)
    page.goto(project.get_absolute_url())
    expect(page.locator("#images .tile")).to_have_count(2)
    page.evaluate("window.notReloaded = true")  # gone if a link loads a whole page

    filters = page.locator("#images nav.filters")
    filters.get_by_role("link", name="Done").click()
    expect(page).to_have_url(re.compile(r"\?status=done$"))
    expect(page.locator("#images .tile .name")).to_have_text(["finished.png"])
    expect(filters.get_by_role("link", name="Done")).to_have_class("active")

    filters.get_by_role("link", name="New").click()
    expect(page.locator("#images .tile .name")).to_have_text(["fresh.png"])

    filters.get_by_role("link", name="Skipped").click()
    expect(page.locator("#images .tile")).to_have_count(0)
    expect(page.locator("#images")).to_contain_text("No images with this status yet.")

    filters.get_by_role("link", name="All").click()
    expect(page.locator("#images .tile .name")).to_have_text(["fresh.png", "finished.png"])
    assert page.evaluate("window.notReloaded") is True


def test_an_upload_after_filtering_shows_the_grid_of_the_current_filter(page, login, creator):
    project = project_create(user=creator, name="Birds", classes=[{"name": "bird"}])
    add_image(project, "finished.png", status=Image.Status.DONE)
    login(page, creator)
    page.goto(f"{project.get_absolute_url()}?status=done")
    page.locator("#images nav.filters").get_by_role("link", name="All").click()
    expect(page).to_have_url(re.compile(r"/projects/\d+/$"))
    expect(page.locator("#images nav.filters a.active")).to_contain_text("All")

    page.set_input_files(
        "#upload-form input[type=file]",
        {"name": "new.png", "mimeType": "image/png", "buffer": image_bytes(color=(1, 2, 3))},
    )
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("#upload-report .report")).to_contain_text("1 added")
    # The grid reloads with the filter in force ("All"), not the one the page was loaded with.
    expect(page.locator("#images .tile .name")).to_have_text(["finished.png", "new.png"])
    expect(page.locator("#images nav.filters a.active")).to_contain_text("All")


def test_an_outsider_sees_neither_the_project_in_the_list_nor_its_page(page, login, creator):
    project = project_create(user=creator, name="Secret lab", classes=[{"name": "flask"}])
    image = add_image(project, "bench.png")
    outsider = make_user("olga")
    login(page, outsider)

    expect(page.locator("main")).to_contain_text("No projects yet.")
    expect(page.locator("main")).not_to_contain_text("Secret lab")

    response = page.goto(project.get_absolute_url())
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("you are not a member of its project")
    expect(page.locator("main")).not_to_contain_text("Secret lab")
    # Nor its image, by guessing the access-checked URLs (the session cookie goes along).
    assert page.request.get(f"/images/{image.pk}/thumbnail/").status == 404
    assert page.request.get(f"/images/{image.pk}/file/").status == 404


def test_a_class_name_with_markup_renders_as_text_and_runs_nothing(page, login, creator, screenshot):
    project = project_create(
        user=creator, name=f"Escaping {XSS_NAME}", classes=[{"name": "cat"}, {"name": XSS_NAME}]
    )
    login(page, creator)
    expect(page.locator(".project-cards h2")).to_have_text([f"Escaping {XSS_NAME}"])

    page.goto(project.get_absolute_url())
    page.wait_for_load_state("networkidle")
    expect(page.locator(".class-chips .chip strong")).to_have_text(["cat", XSS_NAME])
    expect(page.locator("h1")).to_have_text(f"Escaping {XSS_NAME}")
    screenshot(page, "project-with-markup-class")

    page.goto(f"{project.get_absolute_url()}edit/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("input[name=classes-1-name]")).to_have_value(XSS_NAME)

    assert page.locator("img[src=x]").count() == 0
    assert page.dialogs == []
    # The dialog recorder works: a dialog that does open is recorded.
    page.evaluate("setTimeout(() => alert('control'), 0)")
    page.wait_for_timeout(200)
    assert page.dialogs == ["control"]


def test_the_grid_pager_pushes_its_page_and_keeps_it(page, login, creator, monkeypatch):
    """Keyset pages in the browser: Next / Last swap the grid in place and push the page's URL;
    back and reload show that page again, and an "images-changed" reload (upload, a job's
    polling) reloads the page shown, not the first one."""
    monkeypatch.setattr(project_views, "IMAGES_PER_PAGE", 3)
    project = project_create(user=creator, name="Pages", classes=[{"name": "bird"}])
    images = add_images(project, 8, status=Image.Status.NEW)
    names = [image.original_name for image in images]
    login(page, creator)
    page.goto(project.get_absolute_url())
    expect(page.locator("#images .tile .name")).to_have_text(names[:3])
    page.evaluate("window.notReloaded = true")

    pager = page.locator("#images nav.pager")
    pager.get_by_role("link", name="Next ›").click()
    expect(page).to_have_url(re.compile(rf"/projects/{project.pk}/\?after={images[2].pk}$"))
    expect(page.locator("#images .tile .name")).to_have_text(names[3:6])
    pager.get_by_role("link", name="Last »").click()
    expect(page).to_have_url(re.compile(r"\?last=1$"))
    expect(page.locator("#images .tile .name")).to_have_text(names[5:8])
    assert page.evaluate("window.notReloaded") is True

    page.go_back()
    expect(page).to_have_url(re.compile(rf"\?after={images[2].pk}$"))
    expect(page.locator("#images .tile .name")).to_have_text(names[3:6])
    page.reload()
    expect(page.locator("#images .tile .name")).to_have_text(names[3:6])

    # The grid reloads on "images-changed" with its own page: the change shows, the page stays.
    Image.objects.filter(pk=images[4].pk).update(status=Image.Status.DONE)
    page.evaluate("htmx.trigger(document.body, 'images-changed')")
    changed = page.locator(f'#images .tile:has(.tile-counts[data-id="{images[4].pk}"]) .badge')
    expect(changed).to_have_text("Done")
    expect(page.locator("#images .tile .name")).to_have_text(names[3:6])


def test_the_grid_sorts_searches_keeps_both_in_the_url_and_deletes_after_asking(page, login, creator):
    project = project_create(user=creator, name="Orchard", classes=[{"name": "fruit"}])
    cat = project.classes.get()
    for index, (name, count) in enumerate(
        [("apple-1.png", 1), ("banana.png", 3), ("apple-2.png", 2), ("cherry.png", 0)]
    ):
        image = add_image(project, name, color=(10 * index, 120, 40))
        for _ in range(count):
            image.annotations.create(label_class=cat, x=1, y=1, w=5, h=5)
    login(page, creator)
    page.goto(project.get_absolute_url())
    expect(page.locator("#images .tile")).to_have_count(4)

    page.select_option("#grid-sort", "-annotations")
    expect(page).to_have_url(re.compile(r"\?sort=-annotations$"))
    expect(page.locator("#images .tile .name")).to_have_text(
        ["banana.png", "apple-2.png", "apple-1.png", "cherry.png"]
    )

    page.select_option("#grid-sort", "-name")
    expect(page).to_have_url(re.compile(r"\?sort=-name$"))
    # htmx pushes the URL before it swaps the grid, and the swap replaces the sort and search
    # form too (it is part of the grid): type only once the new grid is in.
    expect(page.locator("#images .tile .name")).to_have_text(
        ["cherry.png", "banana.png", "apple-2.png", "apple-1.png"]
    )
    page.fill("#grid-search", "apple")
    expect(page).to_have_url(re.compile(r"\?sort=-name&q=apple$"))
    expect(page.locator("#images .tile .name")).to_have_text(["apple-2.png", "apple-1.png"])

    page.reload()  # the pushed URL: the same sort, search and tiles
    expect(page.locator("#images .tile .name")).to_have_text(["apple-2.png", "apple-1.png"])
    expect(page.locator("#grid-sort")).to_have_value("-name")
    expect(page.locator("#grid-search")).to_have_value("apple")

    page.check("#select-all")
    expect(page.locator("#images input.tile-pick:checked")).to_have_count(2)
    page.click("#delete-images")
    confirm = page.locator("#delete-confirm")
    expect(confirm).to_contain_text("Delete 2 images and 3 annotations")
    assert project.images.count() == 4  # asked, not deleted yet
    page.click("#confirm-delete")
    expect(page.locator("#delete-report")).to_contain_text("2 images deleted, with 3 annotations.")
    expect(page.locator("#images .tile")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"\?sort=-name&q=apple$"))
    assert sorted(project.images.values_list("original_name", flat=True)) == ["banana.png", "cherry.png"]
