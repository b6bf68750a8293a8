"""The review page's display in a real browser (Debian's Chromium, headless): mask opacity and
mode, contrast / brightness, hiding an annotation or a class, the class legend, sticky tools, the
side list's numbers, groups and sorts, the layout at 1280 / 1366 / 1920 px and the help's keys.

What is drawn is read back from the canvas's pixels (the image is the page's own, so the canvas
is readable) and from the canvas's exposed state (`window.labelgpt.canvas`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from playwright.sync_api import expect

from inference.masks import mask_to_rle
from labeling.models import Annotation, Image, LabelClass
from labeling.services.projects import project_create
from tests.e2e.browser import wait_for_review, wait_saved
from tests.e2e.test_review import client_point, drag, photo_image, selected_id

PIXEL = """([x, y]) => {
  const c = window.labelgpt.canvas;
  const p = c.toClient(x, y);
  const rect = c.canvas.getBoundingClientRect();
  const at = (v) => Math.round(v * c.dpr);
  const d = c.ctx.getImageData(at(p.x - rect.left), at(p.y - rect.top), 1, 1).data;
  return [d[0], d[1], d[2]];
}"""


FOCUSED = "() => document.activeElement.id || document.activeElement.textContent.trim().slice(0, 20)"
FOCUSED_SIDE = "() => document.activeElement.id || document.activeElement.className"


def square(x, y, w, h):
    return [[[x, y, x + w, y, x + w, y + h, x, y + h]]]


def square_rle(x, y, w, h, image):
    mask = np.zeros((image.height, image.width), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask_to_rle(mask)


@dataclass
class Scene:
    image: Image
    classes: dict[str, LabelClass]
    rows: dict[str, Annotation]


@pytest.fixture
def scene(creator, tiny_models_settings, inline_tasks) -> Scene:
    """The coffee photo (600 × 400) with five model annotations of known places and scores: two
    accepted with square masks as polygons (A cup, B saucer), three proposals (C cup, D saucer
    with a square mask inside its box as COCO RLE only, E cup); a third class (spoon) has none."""
    project = project_create(
        user=creator, name="Display", classes=[{"name": "cup"}, {"name": "saucer"}, {"name": "spoon"}]
    )
    image = photo_image(project)
    classes = {c.name: c for c in project.classes.all()}
    spec = {
        "A": ("cup", (40, 40, 160, 160), 0.9, "accepted", "polygons"),
        "B": ("saucer", (300, 60, 120, 120), 0.8, "accepted", "polygons"),
        "C": ("cup", (420, 230, 100, 90), 0.7, "proposed", None),
        "D": ("saucer", (60, 250, 120, 100), 0.6, "proposed", "rle"),
        "E": ("cup", (250, 240, 80, 80), 0.5, "proposed", None),
    }
    rows = {
        name: Annotation.objects.create(
            image=image,
            label_class=classes[cls],
            x=x,
            y=y,
            w=w,
            h=h,
            polygons=square(x, y, w, h) if masked == "polygons" else None,
            mask=square_rle(x + 20, y + 20, w - 40, h - 40, image) if masked == "rle" else None,
            score=score,
            state=state,
            phrase=cls,
            source=Annotation.Source.MODEL,
        )
        for name, (cls, (x, y, w, h), score, state, masked) in spec.items()
    }
    Image.objects.filter(pk=image.pk).update(status=Image.Status.PRELABELED)
    return Scene(image=image, classes=classes, rows=rows)


def open_image(page, login, user, image, *, size=None):
    if size:
        page.set_viewport_size(size)
    login(page, user)
    page.goto(f"/images/{image.pk}/review/")
    wait_for_review(page)


def frames(page) -> int:
    return page.evaluate("window.labelgpt.canvas.stats.frames")


def redrawn(page, before: int) -> None:
    """Until a frame after `before` has been drawn."""
    page.wait_for_function(f"() => window.labelgpt.canvas.stats.frames > {before}")


def act(page, run) -> None:
    """Do something and wait until the canvas has drawn it."""
    before = frames(page)
    run()
    redrawn(page, before)


def pixel(page, x, y) -> list[int]:
    return page.evaluate(PIXEL, [x, y])


def blend(under, color, alpha) -> list[float]:
    return [(1 - alpha) * u + alpha * c for u, c in zip(under, color, strict=True)]


def rgb(hex_color: str) -> list[int]:
    return [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]


def close(a, b, tolerance=3.0) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def row(page, annotation):
    return page.locator(f'.ann-row[data-id="{annotation.pk}"]')


def key_of(page, annotation) -> int:
    return page.evaluate("id => window.labelgpt.review.records.find(r => r.id === id).key", annotation.pk)


def canvas_hidden(page) -> list[int]:
    """The ids of the annotations the canvas has and does not draw (hidden)."""
    return page.evaluate(
        "() => window.labelgpt.review.visible"
        ".filter(r => window.labelgpt.canvas.byKey.get(r.key).hidden).map(r => r.id)"
    )


# Masks and the image ------------------------------------------------------------------------------


def test_opacity_slider_mask_mode_key_and_contrast_change_what_is_drawn_never_the_data(
    page, login, creator, scene, screenshot
):
    d = scene.rows["D"]
    cup, saucer = rgb(scene.classes["cup"].color), rgb(scene.classes["saucer"].color)
    open_image(page, login, creator, scene.image)
    # Shift+A accepts D's mask (COCO RLE, drawn from a bitmap) too: accepted masks are
    # translucent, never solid.
    page.keyboard.press("Shift+A")
    wait_saved(page)
    assert Annotation.objects.get(pk=d.pk).state == Annotation.State.ACCEPTED
    versions = dict(Annotation.objects.values_list("pk", "version"))
    act(page, lambda: page.keyboard.press("Escape"))  # nothing selected, nothing hovered
    assert page.evaluate("window.labelgpt.display.settings.opacity") == pytest.approx(0.4)
    filled_a, filled_d = pixel(page, 120, 120), pixel(page, 120, 300)
    assert page.evaluate("window.labelgpt.canvas.stats.masksFilled") == 3

    # O: outline only (the inside shows the image), then hidden (no mask drawn at all).
    act(page, lambda: page.keyboard.press("o"))
    expect(page.locator("#mask-mode")).to_have_text("Masks: outline")
    stats = page.evaluate("window.labelgpt.canvas.stats")
    assert (stats["masksFilled"], stats["masksOutlined"]) == (0, 3)
    outline_a, outline_d_edge = pixel(page, 120, 120), pixel(page, 80.5, 300)
    act(page, lambda: page.keyboard.press("o"))
    expect(page.locator("#mask-mode")).to_have_text("Masks: hidden")
    stats = page.evaluate("window.labelgpt.canvas.stats")
    assert (stats["masksFilled"], stats["masksOutlined"]) == (0, 0)
    image_a, image_d = pixel(page, 120, 120), pixel(page, 120, 300)
    assert outline_a == image_a
    # D's mask has no polygons: its outline comes from its bitmap's edge pixels.
    assert outline_d_edge != pixel(page, 80.5, 300)
    assert close(filled_a, blend(image_a, cup, 0.4)), (filled_a, image_a, cup)
    assert close(filled_d, blend(image_d, saucer, 0.4)), (filled_d, image_d, saucer)
    assert not close(filled_a, cup, 20), "the image shows through an accepted mask"

    # Back to filled; the opacity slider (in the Display panel) sets the fill.
    act(page, lambda: page.keyboard.press("o"))
    expect(page.locator("#mask-mode")).to_have_text("Masks: filled")
    page.locator("#display-panel summary").click()
    act(page, lambda: page.locator("#mask-opacity").fill("80"))
    expect(page.locator("#mask-opacity-value")).to_have_text("80%")
    assert close(pixel(page, 120, 120), blend(image_a, cup, 0.8)), "opacity 80%"

    # Brightness and contrast act on the image, not on the masks drawn over it.
    outside = pixel(page, 560, 20)
    act(page, lambda: page.locator("#image-brightness").fill("150"))
    act(page, lambda: page.locator("#image-contrast").fill("130"))
    assert page.evaluate("window.labelgpt.canvas.display.filter") == "contrast(1.3) brightness(1.5)"
    assert pixel(page, 560, 20) != outside
    brighter_fill = pixel(page, 120, 120)
    screenshot(page, "review-display-panel")
    act(page, lambda: page.keyboard.press("o"))
    act(page, lambda: page.keyboard.press("o"))
    brighter_image = pixel(page, 120, 120)
    assert brighter_image != image_a
    assert close(brighter_fill, blend(brighter_image, cup, 0.8)), "the mask's colour is not filtered"
    act(page, lambda: page.keyboard.press("o"))
    act(page, lambda: page.locator("#image-reset").click())
    assert pixel(page, 560, 20) == outside
    expect(page.locator("#image-reset")).to_be_disabled()

    # Display settings never touch saved data, and come back on the next page load (per user).
    assert dict(Annotation.objects.values_list("pk", "version")) == versions
    page.reload()
    wait_for_review(page)
    assert page.evaluate("window.labelgpt.display.settings.opacity") == pytest.approx(0.8)
    expect(page.locator("#mask-opacity")).to_have_value("80")
    stored = page.evaluate(f"() => JSON.parse(localStorage.getItem('labelgpt:display:{creator.pk}'))")
    assert stored["opacity"] == pytest.approx(0.8) and stored["maskMode"] == "filled"


# Hiding ---------------------------------------------------------------------------------------------


def test_hide_one_annotation_and_hide_a_class_by_key_row_eye_and_legend(page, login, creator, scene):
    a, b, c, d, e = (scene.rows[n] for n in "ABCDE")
    cup, saucer = scene.classes["cup"], scene.classes["saucer"]
    open_image(page, login, creator, scene.image)
    act(page, lambda: row(page, a).click())  # the selection drawn before its pixel is read
    assert selected_id(page) == a.pk
    drawn = page.evaluate("window.labelgpt.canvas.stats.drawn")
    selected_pixel = pixel(page, 120, 120)

    # Shift+H hides the selection (its row says so), Shift+H again shows it.
    act(page, lambda: page.keyboard.press("Shift+H"))
    assert canvas_hidden(page) == [a.pk]
    page.wait_for_function(f"() => window.labelgpt.canvas.stats.drawn === {drawn - 1}")
    assert pixel(page, 120, 120) != selected_pixel
    expect(row(page, a)).to_have_class(re.compile(r"\bis-hidden\b"))
    expect(row(page, a).locator(".eye")).to_have_attribute("aria-pressed", "true")
    act(page, lambda: page.keyboard.press("Shift+H"))
    assert canvas_hidden(page) == []
    assert pixel(page, 120, 120) == selected_pixel
    assert selected_id(page) == a.pk

    # The eye on a row hides that one.
    row(page, b).locator(".eye").click()
    assert canvas_hidden(page) == [b.pk]
    row(page, b).locator(".eye").click()
    assert canvas_hidden(page) == []

    # The legend's eye hides a whole class; Shift+C hides the selection's class.
    page.locator(f'#legend .eye[data-class-id="{cup.pk}"]').click()
    assert sorted(canvas_hidden(page)) == sorted([a.pk, c.pk, e.pk])
    cup_row = page.locator(f'#legend .legend-row[data-class-id="{cup.pk}"]')
    expect(cup_row).to_have_class(re.compile("is-hidden"))
    row(page, d).click()
    page.keyboard.press("Shift+C")
    assert sorted(canvas_hidden(page)) == sorted([a.pk, b.pk, c.pk, d.pk, e.pk])
    page.keyboard.press("Shift+C")
    assert sorted(canvas_hidden(page)) == sorted([a.pk, c.pk, e.pk])
    assert page.evaluate("id => window.labelgpt.display.hiddenClasses.has(id)", saucer.pk) is False

    # A hidden class stays hidden on this project after a reload; a hidden annotation does not.
    row(page, b).locator(".eye").click()
    page.reload()
    wait_for_review(page)
    assert sorted(canvas_hidden(page)) == sorted([a.pk, c.pk, e.pk])
    assert Annotation.objects.filter(state=Annotation.State.ACCEPTED).count() == 2, "nothing saved"


# Legend ---------------------------------------------------------------------------------------------


def test_the_legend_lists_keys_colours_live_counts_and_a_click_sets_the_selections_class(
    page, login, creator, scene
):
    c, e = scene.rows["C"], scene.rows["E"]
    cup, saucer = scene.classes["cup"], scene.classes["saucer"]
    open_image(page, login, creator, scene.image)
    legend = page.locator("#legend .legend-row")
    expect(legend).to_have_count(3)
    expect(legend.locator("kbd")).to_have_text(["1", "2", "3"])
    expect(legend.locator(".name")).to_have_text(["cup", "saucer", "spoon"])
    expect(legend.locator(".count")).to_have_text(["3", "2", "0"])
    swatch = legend.first.locator(".swatch").evaluate("el => getComputedStyle(el).backgroundColor")
    assert swatch == "rgb({}, {}, {})".format(*rgb(cup.color))

    # The first proposal in the list (C, a cup) is selected: a click on "saucer" makes it a saucer.
    assert selected_id(page) == c.pk
    page.locator(f'#legend .pick[data-class-id="{saucer.pk}"]').click()
    wait_saved(page)
    assert Annotation.objects.get(pk=c.pk).label_class_id == saucer.pk
    expect(legend.locator(".count")).to_have_text(["2", "3", "0"])
    saucer_row = page.locator(f'#legend .legend-row[data-class-id="{saucer.pk}"]')
    expect(saucer_row).to_have_class(re.compile("active"))

    # Counts follow decisions: a rejected proposal is no longer shown, nor counted.
    row(page, e).click()
    page.keyboard.press("r")
    wait_saved(page)
    assert Annotation.objects.get(pk=e.pk).state == Annotation.State.REJECTED
    expect(legend.locator(".count")).to_have_text(["1", "3", "0"])


# Sticky tools -----------------------------------------------------------------------------------


def test_box_stays_on_for_two_boxes_and_esc_or_v_return_to_select(page, login, creator, scene):
    open_image(page, login, creator, scene.image)
    page.keyboard.press("b")
    drag(page, client_point(page, 440, 20), client_point(page, 520, 90))
    drag(page, client_point(page, 220, 20), client_point(page, 280, 70))
    wait_saved(page)
    drawn = Annotation.objects.filter(image=scene.image, source=Annotation.Source.HUMAN)
    assert drawn.count() == 2, "two boxes, B pressed once"
    assert page.evaluate("window.labelgpt.review.mode") == "draw"
    expect(page.locator('button[data-mode="draw"]')).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Escape")
    assert page.evaluate("window.labelgpt.review.mode") == "select"
    page.keyboard.press("b")
    page.keyboard.press("v")
    assert page.evaluate("window.labelgpt.review.mode") == "select"
    page.keyboard.press("m")
    page.keyboard.press("v")
    assert page.evaluate("window.labelgpt.review.mode") == "select"


# The side list ------------------------------------------------------------------------------------


def listed(page) -> list[tuple[str, str]]:
    """The list's rows top to bottom: ("group", "cup 3") or (number, annotation id)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#ann-rows > *')]
          .sort((x, y) => parseFloat(x.style.top) - parseFloat(y.style.top))
          .map(el => el.classList.contains('group-row')
            ? ['group', el.querySelector('.name').textContent + ' ' + el.querySelector('.count').textContent]
            : [el.dataset.number, el.dataset.id])"""
    )


def test_the_list_numbers_groups_folds_and_sorts_and_tab_follows_it(page, login, creator, scene):
    a, b, c, d, e = (scene.rows[n] for n in "ABCDE")
    cup = scene.classes["cup"]
    open_image(page, login, creator, scene.image)

    # Grouped by class (project order), most confident first, numbered 1..n.
    assert listed(page) == [
        ["group", "cup 3"], ["1", str(a.pk)], ["2", str(c.pk)], ["3", str(e.pk)],
        ["group", "saucer 2"], ["4", str(b.pk)], ["5", str(d.pk)],
    ]  # fmt: skip
    # The canvas draws the same numbers.
    numbers = page.evaluate(
        "() => window.labelgpt.review.visible"
        ".map(r => [r.id, window.labelgpt.canvas.byKey.get(r.key).number])"
    )
    assert numbers == [[a.pk, 1], [c.pk, 2], [e.pk, 3], [b.pk, 4], [d.pk, 5]]

    # Tab walks the list's order.
    assert selected_id(page) == c.pk
    page.keyboard.press("Tab")
    assert selected_id(page) == e.pk
    page.keyboard.press("Tab")
    assert selected_id(page) == b.pk
    expect(row(page, b)).to_have_attribute("aria-selected", "true")

    # A header folds its group (its count stays; the other numbers do not move) and unfolds it.
    header = page.locator(f'.group-row[data-class-id="{cup.pk}"]')
    header.click()
    expect(header).to_have_attribute("aria-expanded", "false")
    assert listed(page) == [["group", "cup 3"], ["group", "saucer 2"], ["4", str(b.pk)], ["5", str(d.pk)]]
    # Selecting into a folded group unfolds it.
    page.keyboard.press("Shift+Tab")
    assert selected_id(page) == e.pk
    expect(header).to_have_attribute("aria-expanded", "true")

    # By position: top-left reading order (A B on the first line, D E C on the second), in groups
    # and without.
    page.locator("#list-sort").select_option("position")
    assert [n for n in listed(page) if n[0] != "group"] == [
        ["1", str(a.pk)], ["2", str(e.pk)], ["3", str(c.pk)], ["4", str(b.pk)], ["5", str(d.pk)],
    ]  # fmt: skip
    page.locator("#list-group").uncheck()
    assert listed(page) == [
        ["1", str(a.pk)], ["2", str(b.pk)], ["3", str(d.pk)], ["4", str(e.pk)], ["5", str(c.pk)],
    ]  # fmt: skip
    row(page, b).click()
    page.keyboard.press("Tab")
    assert selected_id(page) == d.pk
    # A / R go on to the next proposal in the list's order.
    page.keyboard.press("a")
    wait_saved(page)
    assert selected_id(page) == e.pk


# Layout -------------------------------------------------------------------------------------------


def toolbar_rows(page) -> int:
    """How many rows the toolbar's items take (their distinct tops), and nothing scrolled away."""
    boxes = page.evaluate(
        """() => {
          const bar = document.querySelector('.toolbar');
          const middle = (el) => {
            const box = el.getBoundingClientRect();
            return Math.round(box.top + box.height / 2);
          };
          const tops = new Set([...bar.children].filter(el => el.offsetParent).map(middle));
          return {rows: tops.size, overflow: bar.scrollWidth - bar.clientWidth};
        }"""
    )
    assert boxes["overflow"] <= 0, f"the toolbar overflows by {boxes['overflow']} px"
    return boxes["rows"]


def test_one_toolbar_row_at_1280_and_1366_the_canvas_takes_the_width_at_1920_all_by_keyboard(
    page, login, creator, scene, screenshot
):
    open_image(page, login, creator, scene.image, size={"width": 1280, "height": 800})
    screenshot(page, "review-display-1280")
    assert toolbar_rows(page) == 1
    stage_1280 = page.locator("#stage").bounding_box()

    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_function("() => document.querySelector('#stage').getBoundingClientRect().width > 0")
    assert toolbar_rows(page) == 1

    page.set_viewport_size({"width": 1920, "height": 1080})
    page.wait_for_function(
        f"() => document.querySelector('#stage').getBoundingClientRect().width > {stage_1280['width']}"
    )
    stage_1920 = page.locator("#stage").bounding_box()
    side = page.locator(".side").bounding_box()
    assert stage_1920["x"] == pytest.approx(0, abs=1)
    assert stage_1920["width"] + side["width"] == pytest.approx(1920, abs=2), "no margins around the canvas"
    assert stage_1920["width"] > stage_1280["width"] + 500
    assert toolbar_rows(page) == 1
    page.keyboard.press("f")
    page.wait_for_timeout(200)
    screenshot(page, "review-display-1920")

    # F6 takes the keyboard to the toolbar, F6 again to the side panel; Tab walks every control.
    page.keyboard.press("F6")
    reached = []
    for _ in range(60):
        reached.append(page.evaluate(FOCUSED))
        page.keyboard.press("Tab")
    for wanted in ["Select V", "Box B", "Segment M", "class-select", "accept-button", "reject-button",
                   "accept-all-button", "zoom-out", "zoom-in", "fit-button"]:  # fmt: skip
        assert wanted in reached, (wanted, reached)
    # The header's buttons are just before the toolbar.
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("F6")
    backwards = []
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        backwards.append(page.evaluate("() => document.activeElement.id"))
    for wanted in ["help-button", "submit-button", "skip-button", "previous-link"]:
        assert wanted in backwards, (wanted, backwards)
    page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("F6")
    page.keyboard.press("F6")
    assert page.evaluate("() => document.activeElement.closest('.side') !== null")
    side_reached = []
    for _ in range(25):
        side_reached.append(page.evaluate(FOCUSED_SIDE))
        page.keyboard.press("Tab")
    for wanted in ["pick", "eye", "threshold", "show-rejected", "list-sort", "list-group"]:
        assert wanted in side_reached, (wanted, side_reached)


def test_the_help_lists_every_key_of_the_keymap(page, login, creator, scene, screenshot):
    open_image(page, login, creator, scene.image)
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    keys = page.evaluate("window.labelgpt.keys")
    combos = [combo for entry in keys for combo in entry["combos"]]
    shown = page.locator("#help kbd[data-combo]").evaluate_all("els => els.map(el => el.dataset.combo)")
    assert sorted(shown) == sorted(combos)
    for entry in keys:
        expect(page.locator("#help")).to_contain_text(entry["text"])
    for combo in ["Shift+H", "Shift+C", "o", "F6", "b", "Escape"]:
        assert combo in combos
    screenshot(page, "review-display-help")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
