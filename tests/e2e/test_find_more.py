""" "Find more like this" in a real browser: L on a SAM 3 project adds the other instances as
proposals in place (the task run inline, on the tiny SAM 3); on a Grounding DINO project without a
SAM 3 model, L says why it is unavailable and the button is disabled with the reason."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import model_choices
from labeling.models import Annotation, FindMoreRequest
from tests.e2e.test_review import open_review, selected_id

DETECTORS = {
    "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "sam3": "facebook/sam3",
}


@pytest.fixture
def detectors(settings):
    settings.LABELGPT_DETECTORS = DETECTORS
    return settings


def test_l_on_a_sam3_project_adds_proposals_in_place(page, login, seeded, detectors, screenshot):
    project = seeded.project
    project.detector = "sam3"
    project.keep_threshold = 0.1
    project.save()
    image_id = open_review(page, login, seeded.annotator, project)
    exemplar = selected_id(page)
    before = page.evaluate("window.labelgpt.review.records.length")
    page.keyboard.press("l")
    messages = page.locator("#review-messages")
    expect(messages).to_contain_text("Found", timeout=60_000)
    request = FindMoreRequest.objects.get(image_id=image_id)
    assert request.status == "succeeded" and request.annotation_id == exemplar, request.error
    assert request.created_count > 0 and request.user == seeded.annotator
    created = set(request.annotation_ids)
    assert (
        set(
            Annotation.objects.filter(pk__in=created, state="proposed", source="model").values_list(
                "pk", flat=True
            )
        )
        == created
    )
    # In place: the page holds the new proposals without a reload.
    ids = set(page.evaluate("window.labelgpt.review.records.map((r) => r.id)"))
    assert created <= ids
    assert page.evaluate("window.labelgpt.review.records.length") == before + len(created)
    assert page.evaluate("window.labelgpt.review.imageId") == image_id
    expect(page.locator("#find-more-button")).to_be_enabled()
    screenshot(page, "find-more-found")


def test_l_on_a_grounding_dino_project_without_sam3_says_why(page, login, seeded, detectors, screenshot):
    open_review(page, login, seeded.annotator, seeded.project)
    button = page.locator("#find-more-button")
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("title", model_choices.NO_SAM3)
    expect(page.locator("#find-more-reason")).to_have_text(model_choices.NO_SAM3)
    page.keyboard.press("l")
    expect(page.locator("#review-messages")).to_contain_text(model_choices.NO_SAM3)
    assert not FindMoreRequest.objects.exists()
    screenshot(page, "find-more-unavailable")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_contain_text("find more like the selected annotation")
