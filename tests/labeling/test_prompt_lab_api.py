"""The prompt lab through the API and its page: start (201, and 400 with the reason for each bad
input), list (keyset pages, newest first), a run with its candidates, cancel, "Use this prompt";
the Prompt lab tab for managers only (who sees what is in test_api_matrix.py and
test_project_tabs.py), its form, its runs panel and its "Use this prompt" button."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.api.pagination import NewestFirstCursorPagination
from labeling.models import JobStatus, PromptLabRun
from labeling.services import prompt_lab
from tests.conftest import plain_images
from tests.labeling.test_prompt_lab import crafted  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "clear_throttles")]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def lab(request):
    """The crafted set of test_prompt_lab.py: two done images, their cats, the crafted detector."""
    return request.getfixturevalue("crafted")[0]


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/prompt-lab/"


def test_a_manager_starts_a_run_and_reads_its_figures(api_for, lab):
    cat = lab.classes.get(name="cat")
    client = api_for("manager")
    response = client.post(
        url(lab), {"class_id": cat.pk, "prompts": ["alpha", "beta"], "seed": 3}, format="json"
    )
    assert response.status_code == 201, response.data
    body = response.data
    assert body["status"] == "queued" and body["class_id"] == cat.pk and body["seed"] == 3
    assert body["sample_size"] == 50 and len(body["image_ids"]) == 2
    assert [(c["prompt"], c["is_baseline"]) for c in body["candidates"]] == [
        ("cat", True),
        ("alpha", False),
        ("beta", False),
    ]
    prompt_lab.prompt_lab_run(run_id=body["id"])
    run = client.get(f"/api/v1/prompt-lab/runs/{body['id']}/").data
    assert run["status"] == "succeeded" and run["seconds"] is not None
    figures = {c["prompt"]: c["scores"] for c in run["candidates"]}
    assert (figures["alpha"]["precision"], figures["alpha"]["recall"]) == (1.0, 0.5)
    assert (figures["beta"]["precision"], figures["beta"]["recall"]) == (0.5, 1.0)

    beta = next(c for c in run["candidates"] if c["prompt"] == "beta")
    used = client.post(beta["use_url"], {"set_threshold": True}, format="json")
    assert used.status_code == 200, used.data
    assert used.data["prompt"] == "beta" and used.data["box_threshold"] == pytest.approx(0.8)
    cat.refresh_from_db()
    assert cat.prompt == "beta" and cat.box_threshold == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": ["  "]}, "may not be blank"),
        ({"prompts": ["x" * 301]}, "300"),
        ({"prompts": [f"p{i}" for i in range(6)]}, "prompts"),
        ({"prompts": "alpha"}, "prompts"),
        ({"prompts": ["alpha"], "detector": "nope"}, "detectors this server offers"),
        ({"prompts": ["alpha"], "sample_size": 0}, "sample_size"),
        ({"prompts": ["alpha"], "sample_size": "5"}, "sample_size"),
        ({"prompts": ["alpha"], "seed": -1}, "seed"),
        ({"prompts": ["alpha"], "colour": "red"}, "Unknown field(s): colour"),
        ({"prompts": ["alpha"], "class_id": 999999}, "not a class of this project"),
    ],
)
def test_a_bad_start_is_a_400_with_the_reason(api_for, lab, body, words):
    payload = {"class_id": lab.classes.get(name="cat").pk, **body}
    response = api_for("manager").post(url(lab), payload, format="json")
    assert response.status_code == 400, response.data
    assert words in response.data["error"]
    assert not PromptLabRun.objects.exists()


def test_no_done_image_is_a_400_saying_so(api_for, project):
    plain_images(project, 1)
    response = api_for("manager").post(
        url(project), {"class_id": project.classes.get(name="cat").pk, "prompts": ["kitten"]}, format="json"
    )
    assert response.status_code == 400 and "reviewed as done" in response.data["error"]
    assert "sample" in response.data["fields"]


def test_the_runs_list_pages_newest_first_by_keyset(api_for, lab, monkeypatch):
    monkeypatch.setattr(NewestFirstCursorPagination, "page_size", 2)
    cat = lab.classes.get(name="cat")
    ids = [
        prompt_lab.prompt_lab_start(
            project=lab, user=lab.created_by, label_class_id=cat.pk, prompts=[f"p{i}"]
        ).pk
        for i in range(3)
    ]
    client = api_for("manager")
    first = client.get(url(lab)).data
    assert [r["id"] for r in first["results"]] == ids[::-1][:2]
    assert "count" not in first and first["next"]
    second = client.get(first["next"]).data
    assert [r["id"] for r in second["results"]] == [ids[0]]
    assert all(len(r["candidates"]) == 2 for r in first["results"])


def test_cancel_stops_an_active_run_once(api_for, lab):
    cat = lab.classes.get(name="cat")
    run = prompt_lab.prompt_lab_start(
        project=lab, user=lab.created_by, label_class_id=cat.pk, prompts=["alpha"]
    )
    client = api_for("manager")
    cancelled = client.post(f"/api/v1/prompt-lab/runs/{run.pk}/cancel/", format="json")
    assert cancelled.status_code == 200 and cancelled.data["status"] == "cancelled"
    assert {c["status"] for c in cancelled.data["candidates"]} == {"cancelled"}
    again = client.post(f"/api/v1/prompt-lab/runs/{run.pk}/cancel/", format="json")
    assert again.status_code == 409 and "already ended" in again.data["error"]
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is False


def test_using_an_unmeasured_candidate_is_a_400(api_for, lab):
    cat = lab.classes.get(name="cat")
    run = prompt_lab.prompt_lab_start(
        project=lab, user=lab.created_by, label_class_id=cat.pk, prompts=["alpha"]
    )
    candidate = run.candidates.get(prompt="alpha")
    response = api_for("manager").post(
        f"/api/v1/prompt-lab/candidates/{candidate.pk}/use/", {"set_threshold": "yes"}, format="json"
    )
    assert response.status_code == 400 and "set_threshold must be true or false" in response.data["error"]
    response = api_for("manager").post(
        f"/api/v1/prompt-lab/candidates/{candidate.pk}/use/", {}, format="json"
    )
    assert response.status_code == 400 and "no figures" in response.data["error"]
    cat.refresh_from_db()
    assert cat.prompt == "cat"


# The page ----------------------------------------------------------------------------------------


def tab(project) -> str:
    return reverse("project-prompt-lab", args=[project.pk])


def test_the_tab_shows_the_form_and_the_done_images(client_for, manager, lab):
    content = client_for(manager).get(tab(lab)).content.decode()
    assert 'id="prompt-lab-form"' in content and "2 images reviewed as done" in content
    assert 'id="lab-no-runs"' in content


def test_the_tab_says_to_review_first_without_done_images(client_for, manager, project):
    content = client_for(manager).get(tab(project)).content.decode()
    assert 'id="lab-no-done"' in content and 'id="prompt-lab-form"' not in content


def test_the_form_starts_a_run_and_the_panel_shows_its_figures_side_by_side(client_for, manager, lab):
    client = client_for(manager)
    cat = lab.classes.get(name="cat")
    detector = lab.detector
    form = {
        "label_class": cat.pk,
        "prompts": "alpha\n\nbeta\n",
        "detector": detector,
        "sample_size": 50,
        "seed": 0,
    }
    response = client.post(tab(lab), form, **HTMX)
    assert response.status_code == 200
    run = PromptLabRun.objects.get()
    assert [c.prompt for c in run.candidates.all()] == ["cat", "alpha", "beta"]
    panel = response.content.decode()
    assert f'data-run="{run.pk}"' in panel and 'hx-trigger="every 2s"' in panel  # polled while queued

    prompt_lab.prompt_lab_run(run_id=run.pk)
    panel = client.get(reverse("project-prompt-lab-runs", args=[lab.pk]), **HTMX).content.decode()
    assert "every 2s" not in panel  # nothing active: no more polling
    alpha = run.candidates.get(prompt="alpha")
    row = panel.split(f'data-candidate="{alpha.pk}"')[1].split("</tr>")[0]
    assert '<td class="fig-precision">1.000</td>' in row and '<td class="fig-recall">0.500</td>' in row
    assert "Use this prompt" in row
    baseline = panel.split(f'data-candidate="{run.candidates.get(is_baseline=True).pk}"')[1].split("</tr>")[0]
    assert "baseline" in baseline and "in use" in baseline and "Use this prompt" not in baseline

    used = client.post(reverse("prompt-lab-use", args=[alpha.pk]), {"set_threshold": "1"}, **HTMX)
    assert used.status_code == 200 and "now uses the prompt “alpha”" in used.content.decode()
    cat.refresh_from_db()
    assert cat.prompt == "alpha" and cat.box_threshold == pytest.approx(alpha.scores["best_threshold"])


def test_a_bad_form_is_a_400_with_the_reason_and_starts_nothing(client_for, manager, lab):
    cat = lab.classes.get(name="cat")
    form = {"label_class": cat.pk, "prompts": "\n \n", "detector": lab.detector, "sample_size": 50, "seed": 0}
    response = client_for(manager).post(tab(lab), form, **HTMX)
    assert response.status_code == 400 and "prompts: This field is required." in response.content.decode()
    response = client_for(manager).post(tab(lab), {**form, "prompts": "x" * 301}, **HTMX)
    assert response.status_code == 400 and "300 characters at most" in response.content.decode()
    response = client_for(manager).post(tab(lab), {**form, "prompts": "cat"}, **HTMX)
    assert response.status_code == 400 and "baseline" in response.content.decode()
    assert not PromptLabRun.objects.exists()


def test_annotators_and_outsiders_cannot_use_or_cancel(client_for, annotator, outsider, lab):
    cat = lab.classes.get(name="cat")
    run = prompt_lab.prompt_lab_start(
        project=lab, user=lab.created_by, label_class_id=cat.pk, prompts=["alpha"]
    )
    prompt_lab.prompt_lab_run(run_id=run.pk)
    alpha = run.candidates.get(prompt="alpha")
    for user, code in ((annotator, 403), (outsider, 404)):
        client = client_for(user)
        assert client.post(reverse("prompt-lab-use", args=[alpha.pk])).status_code == code
        assert client.post(reverse("prompt-lab-cancel", args=[run.pk])).status_code == code
        assert client.get(reverse("project-prompt-lab-runs", args=[lab.pk]), **HTMX).status_code == code
    cat.refresh_from_db()
    assert cat.prompt == "cat"
    assert PromptLabRun.objects.get().status == JobStatus.SUCCEEDED
