"""The Prompt lab tab in a real browser: a manager starts a run of two candidate prompts, sees it
queued, then (the run measured meanwhile, as a gpu worker would) its figures side by side through
the panel's polling, and clicks "Use this prompt": the class's prompt changes."""

from __future__ import annotations

from django.urls import reverse
from playwright.sync_api import expect

from inference import registry
from labeling import queues
from labeling.models import Annotation, Image, LabelClass, PromptLabRun
from labeling.services import prompt_lab
from labeling.services.projects import project_create
from tests.conftest import plain_images
from tests.labeling.test_prompt_lab import TRUTHS, CraftedDetector


def test_a_manager_runs_the_prompt_lab_and_uses_the_best_prompt(
    page, login, creator, monkeypatch, screenshot
):
    sent: list[tuple] = []
    monkeypatch.setattr(queues, "task_send", lambda *, task, args=(): sent.append((task, tuple(args))))
    detector = CraftedDetector()
    monkeypatch.setattr(registry, "get_detector", lambda config, name: detector)
    project = project_create(
        user=creator, name="Lab", classes=[{"name": "cat"}, {"name": "dog"}], segment=False
    )
    images = plain_images(project, 2)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")
    for index, image in enumerate(images):
        for x, y, w, h in TRUTHS[index]:
            Annotation.objects.create(
                image=image, label_class=cat, x=x, y=y, w=w, h=h,
                source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED,
            )  # fmt: skip

    login(page, creator)
    page.goto(reverse("project-detail", args=[project.pk]))
    page.locator("nav.tabs").get_by_role("link", name="Prompt lab", exact=True).click()
    form = page.locator("#prompt-lab-form")
    expect(form).to_contain_text("2 images reviewed as done")
    form.locator('select[name="label_class"]').select_option(label="cat")
    form.locator('textarea[name="prompts"]').fill("alpha\nbeta")
    form.get_by_role("button", name="Run").click()
    run_box = page.locator(".lab-run").first
    expect(run_box).to_have_attribute("data-status", "queued")
    expect(run_box.locator(".lab-prompt")).to_have_text(["cat", "alpha", "beta"])

    run = PromptLabRun.objects.get()
    assert [task for task, _ in sent] == [queues.PROMPT_LAB_RUN]
    prompt_lab.prompt_lab_run(run_id=run.pk)  # what the gpu worker does; the panel's poll shows it
    expect(run_box).to_have_attribute("data-status", "succeeded", timeout=15_000)
    alpha = run.candidates.get(prompt="alpha")
    beta = run.candidates.get(prompt="beta")
    alpha_row = page.locator(f'tr[data-candidate="{alpha.pk}"]')
    beta_row = page.locator(f'tr[data-candidate="{beta.pk}"]')
    expect(alpha_row.locator(".fig-precision")).to_have_text("1.000")
    expect(alpha_row.locator(".fig-recall")).to_have_text("0.500")
    expect(beta_row.locator(".fig-precision")).to_have_text("0.500")
    expect(beta_row.locator(".fig-recall")).to_have_text("1.000")
    expect(page.locator("tr.baseline")).to_contain_text("in use")
    screenshot(page, "prompt-lab-results")

    alpha_row.get_by_role("button", name="Use this prompt").click()
    expect(page.locator("#lab-message")).to_contain_text("now uses the prompt “alpha”")
    expect(alpha_row).to_contain_text("in use")
    assert LabelClass.objects.get(pk=cat.pk).prompt == "alpha"
