"""The prompt lab (labeling.services.prompt_lab): starting a run (who, what, the seeded sample,
the reasons for a refusal), running it (a crafted detector whose detections give known figures,
the tiny models end to end), the detection cache (a re-run runs no model), failures and cancel,
and "Use this prompt"."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from inference import registry
from inference.errors import InferenceError
from inference.masks import mask_to_rle
from inference.protocols import Detection
from labeling import queues
from labeling.evaluation import EvalImage, Guess, Truth, evaluate
from labeling.models import (
    Annotation,
    DetectionCache,
    Image,
    JobStatus,
    PromptLabCandidate,
    PromptLabRun,
)
from labeling.services import prompt_lab
from tests.conftest import plain_images
from tests.labeling.conftest import ingest_photos

pytestmark = pytest.mark.django_db

# The crafted set: two done images of 64 × 48 (told apart by their red value, 0 and 1).
TRUTHS = {0: [(2.0, 2.0, 20.0, 20.0), (30.0, 10.0, 20.0, 20.0)], 1: []}
# Prompt → detections per image (box, score): "alpha" finds one of the two cats (precision 1.0,
# recall 0.5), "beta" both and two false ones on the empty image (precision 0.5, recall 1.0).
CRAFTED = {
    "alpha": {0: [((2.0, 2.0, 20.0, 20.0), 0.9)], 1: []},
    "beta": {
        0: [((2.0, 2.0, 20.0, 20.0), 0.9), ((30.0, 10.0, 20.0, 20.0), 0.8)],
        1: [((5.0, 5.0, 10.0, 10.0), 0.7), ((40.0, 20.0, 10.0, 10.0), 0.6)],
    },
    "cat": {0: [], 1: []},  # the class's own prompt (the baseline) finds nothing
}


class CraftedDetector:
    """A detector whose detections are fixed per prompt and image; it counts its calls."""

    name = "crafted"

    def __init__(self, table=CRAFTED, on_call=None) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []
        self.on_call = on_call

    def detect(
        self,
        images,
        prompts,
        *,
        box_threshold,
        text_threshold,
        keep_threshold,
        prompt_mode="joint",
        nms_iou=0.5,
    ):
        (prompt,) = prompts
        self.calls.append((prompt.text, len(images)))
        if self.on_call is not None:
            self.on_call()
        out = []
        for image in images:
            key = image.getpixel((0, 0))[0]
            out.append(
                [
                    Detection(class_index=0, box=box, score=score, phrase=prompt.text)
                    for box, score in self.table[prompt.text][key]
                    if score >= keep_threshold
                ]
            )
        return out


@pytest.fixture
def crafted(project, monkeypatch):
    """The project with segmentation off, two done images with their accepted cats, and the
    crafted detector in place of the registry's."""
    project.segment = False
    project.save()
    images = plain_images(project, 2)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")
    for index, image in enumerate(images):
        for x, y, w, h in TRUTHS[index]:
            Annotation.objects.create(
                image=image, label_class=cat, x=x, y=y, w=w, h=h,
                source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED,
            )  # fmt: skip
        # A rejected proposal is not a truth.
        Annotation.objects.create(
            image=image, label_class=cat, x=1, y=1, w=5, h=5, score=0.5,
            source=Annotation.Source.MODEL, state=Annotation.State.REJECTED,
        )  # fmt: skip
    detector = CraftedDetector()
    monkeypatch.setattr(registry, "get_detector", lambda config, name: detector)
    return project, images, cat, detector


def start(project, user, cat, prompts, **kwargs) -> PromptLabRun:
    return prompt_lab.prompt_lab_start(
        project=project, user=user, label_class_id=cat.pk, prompts=prompts, **kwargs
    )


def by_prompt(run: PromptLabRun) -> dict[str, PromptLabCandidate]:
    return {c.prompt: c for c in run.candidates.order_by("position")}


# The figures -------------------------------------------------------------------------------------


def test_two_crafted_prompts_give_precision_one_recall_half_and_the_reverse(crafted, manager, task_calls):
    project, _images, cat, _detector = crafted
    run = start(project, manager, cat, ["alpha", "beta"])
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.seconds is not None and run.seconds >= 0
    candidates = by_prompt(run)
    assert [c.prompt for c in run.candidates.order_by("position")] == ["cat", "alpha", "beta"]
    assert candidates["cat"].is_baseline and not candidates["alpha"].is_baseline
    alpha, beta, baseline = candidates["alpha"].scores, candidates["beta"].scores, candidates["cat"].scores
    assert (alpha["precision"], alpha["recall"]) == (1.0, 0.5)
    assert alpha["f1"] == pytest.approx(2 / 3)
    assert (alpha["true_positives"], alpha["false_positives"], alpha["false_negatives"]) == (1, 0, 1)
    assert (beta["precision"], beta["recall"]) == (0.5, 1.0)
    assert (beta["true_positives"], beta["false_positives"], beta["false_negatives"]) == (2, 2, 0)
    # beta's F1-best threshold drops the two false ones (scores 0.7 and 0.6): 0.8 gives 1.0 / 1.0.
    assert beta["best_threshold"] == pytest.approx(0.8) and beta["best_f1"] == pytest.approx(1.0)
    assert baseline["recall"] == 0.0 and baseline["guesses"] == 0 and baseline["truths"] == 2
    assert all(c.status == JobStatus.SUCCEEDED for c in candidates.values())
    assert all(c.scores["threshold"] == project.box_threshold for c in candidates.values())
    assert all(c.seconds_per_image is not None for c in candidates.values())
    # Segmentation is off: no mask, so no mask AP.
    assert alpha["ap_mask"] is None and alpha["ap_box"] is not None


def test_the_stored_figures_are_evaluate_on_the_same_data(crafted, manager, task_calls):
    project, images, cat, _ = crafted
    run = start(project, manager, cat, ["beta"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    stored = by_prompt(run)["beta"].scores
    eval_images = [EvalImage(id=i.pk, width=i.width, height=i.height) for i in images]
    truths = [Truth(image_id=images[k].pk, box=box) for k, boxes in TRUTHS.items() for box in boxes]
    guesses = [
        Guess(image_id=images[k].pk, box=box, score=score)
        for k, found in CRAFTED["beta"].items()
        for box, score in found
    ]
    assert (
        stored == evaluate(eval_images, truths, guesses, threshold=project.box_threshold, iou=0.5).as_dict()
    )


def test_the_class_threshold_is_the_one_measured_at(crafted, manager, task_calls):
    project, _, cat, _ = crafted
    cat.box_threshold = 0.85
    cat.save()
    run = start(project, manager, cat, ["beta"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    beta = by_prompt(run)["beta"].scores
    assert beta["threshold"] == 0.85
    assert (beta["true_positives"], beta["false_positives"], beta["false_negatives"]) == (1, 0, 1)


# The cache ---------------------------------------------------------------------------------------


def test_a_rerun_of_the_same_prompts_calls_no_model(crafted, manager, task_calls):
    project, _, cat, detector = crafted
    first = start(project, manager, cat, ["alpha", "beta"])
    prompt_lab.prompt_lab_run(run_id=first.pk)
    calls = len(detector.calls)
    assert calls == 3  # one batch per candidate (the two images fit in one)
    assert DetectionCache.objects.count() == 6  # 3 prompts × 2 images

    second = start(project, manager, cat, ["beta", "alpha"])
    prompt_lab.prompt_lab_run(run_id=second.pk)
    assert len(detector.calls) == calls  # every detection came from the cache
    again = by_prompt(second)
    assert all(c.cached_images == 2 for c in again.values())
    assert {p: c.scores for p, c in again.items()} == {p: c.scores for p, c in by_prompt(first).items()}
    # A new prompt runs the model on its own, once.
    third = start(project, manager, cat, ["beta", "alpha", "a cat"], seed=0)
    detector.table = {**CRAFTED, "a cat": CRAFTED["alpha"]}
    prompt_lab.prompt_lab_run(run_id=third.pk)
    assert detector.calls[calls:] == [("a cat", 2)]


def test_the_cache_key_changes_with_what_makes_the_detections():
    params = {"models": "real", "text_threshold": 0.25, "keep_threshold": 0.1, "max_instances": None}
    key = prompt_lab.cache_key(params=params, source="gdino", masks="none", prompt="a cat", sha256="ab")
    assert key == prompt_lab.cache_key(
        params=params, source="gdino", masks="none", prompt=" A  Cat. ", sha256="ab"
    )
    assert key != prompt_lab.cache_key(
        params=params, source="sam3", masks="none", prompt="a cat", sha256="ab"
    )
    assert key != prompt_lab.cache_key(
        params=params, source="gdino", masks="own", prompt="a cat", sha256="ab"
    )
    assert key != prompt_lab.cache_key(
        params=params, source="gdino", masks="none", prompt="a dog", sha256="ab"
    )
    assert key != prompt_lab.cache_key(
        params=params, source="gdino", masks="none", prompt="a cat", sha256="cd"
    )
    lower = {**params, "keep_threshold": 0.05}
    assert key != prompt_lab.cache_key(
        params=lower, source="gdino", masks="none", prompt="a cat", sha256="ab"
    )


# The tiny models, end to end ---------------------------------------------------------------------


@pytest.fixture
def tiny_lab(project, tiny_models):
    """Two photos reviewed as done, each with an accepted cat (box and mask)."""
    photos = ingest_photos(project, [("chelsea", ""), ("coffee", "")])
    Image.objects.filter(pk__in=[p.pk for p in photos]).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")
    for photo in photos:
        mask = np.zeros((photo.height, photo.width), dtype=bool)
        mask[40:200, 60:260] = True
        Annotation.objects.create(
            image=photo, label_class=cat, x=60, y=40, w=200, h=160, mask=mask_to_rle(mask),
            source=Annotation.Source.HUMAN, state=Annotation.State.ACCEPTED,
        )  # fmt: skip
    project.keep_threshold = 0.0  # every detection of the random tiny model counts
    project.save()
    return project, photos, cat


def test_the_tiny_models_measure_a_run_and_a_rerun_loads_no_model(tiny_lab, manager, task_calls, monkeypatch):
    project, _photos, cat = tiny_lab
    run = start(project, manager, cat, ["a small cat"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    for candidate in run.candidates.all():
        assert candidate.status == JobStatus.SUCCEEDED, candidate.error
        scores = candidate.scores
        assert scores["truths"] == 2
        assert scores["ap_box"] is not None and 0.0 <= scores["ap_box"] <= 1.0
        assert candidate.seconds_per_image > 0 and candidate.cached_images == 0
    entries = DetectionCache.objects.all()
    assert entries.count() == 4 and any(p.get("mask") for e in entries for p in e.proposals)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for a cached prompt")

    monkeypatch.setattr(registry, "get_detector", no_model)
    monkeypatch.setattr(registry, "get_segmenter", no_model)
    again = start(project, manager, cat, ["a small cat"])
    prompt_lab.prompt_lab_run(run_id=again.pk)
    again.refresh_from_db()
    assert again.status == JobStatus.SUCCEEDED, again.error
    assert [c.cached_images for c in again.candidates.all()] == [2, 2]
    assert [c.scores for c in again.candidates.all()] == [c.scores for c in run.candidates.all()]
    assert [c.seconds_per_image for c in again.candidates.all()] == [
        c.seconds_per_image for c in run.candidates.all()
    ]


# Starting: the sample and the refusals -----------------------------------------------------------


def test_the_sample_is_seeded_and_drawn_from_done_images_only(project, manager, task_calls):
    images = plain_images(project, 12)
    done = images[:10]
    Image.objects.filter(pk__in=[i.pk for i in done]).update(status=Image.Status.DONE)
    cat = project.classes.get(name="cat")
    one = start(project, manager, cat, ["kitten"], sample_size=4, seed=7)
    two = start(project, manager, cat, ["kitten"], sample_size=4, seed=7)
    other = start(project, manager, cat, ["kitten"], sample_size=4, seed=8)
    ids = sorted(i.pk for i in done)
    assert one.image_ids == two.image_ids == random.Random(7).sample(ids, 4)
    assert other.image_ids == random.Random(8).sample(ids, 4) and other.image_ids != one.image_ids
    assert set(one.image_ids) <= set(ids)
    everything = start(project, manager, cat, ["kitten"], sample_size=50, seed=1)
    assert sorted(everything.image_ids) == ids  # fewer done images than asked: all of them
    assert prompt_lab.sample_ids([5, 3, 9], size=2, seed=3) == prompt_lab.sample_ids(
        [9, 5, 3], size=2, seed=3
    )


def test_a_run_is_sent_to_the_gpu_queue_on_commit(
    project, manager, task_calls, django_capture_on_commit_callbacks
):
    (image,) = plain_images(project, 1)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, manager, project.classes.get(name="cat"), ["kitten"])
    assert task_calls.of(queues.PROMPT_LAB_RUN) == [(run.pk,)]
    assert queues.PROMPT_LAB_RUN.queue == queues.GPU
    assert run.status == JobStatus.QUEUED and run.params["threshold"] == project.box_threshold


def test_a_broker_that_cannot_be_reached_fails_the_run_with_the_reason(
    project, manager, monkeypatch, django_capture_on_commit_callbacks
):
    (image,) = plain_images(project, 1)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE)

    def down(**kwargs):
        raise queues.QueueUnavailable()

    monkeypatch.setattr(queues, "task_send", down)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, manager, project.classes.get(name="cat"), ["kitten"])
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "task queue" in run.error


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"prompts": []}, "prompts", "at least one"),
        ({"prompts": ["   ", ""]}, "prompts", "at least one"),
        ({"prompts": ["x" * 301]}, "prompts", "300 characters"),
        ({"prompts": [". . ."]}, "prompts", "no words"),
        ({"prompts": [f"p{i}" for i in range(6)]}, "prompts", "5 prompts at most"),
        ({"prompts": ["cat"]}, "prompts", "baseline"),
        ({"detector": "nope"}, "detector", "detectors this server offers"),
        ({"sample_size": 0}, "sample_size", "1 to 500"),
        ({"sample_size": 501}, "sample_size", "1 to 500"),
        ({"seed": -1}, "seed", "whole number"),
    ],
)
def test_a_bad_request_is_refused_with_the_reason(project, manager, task_calls, change, field, words):
    (image,) = plain_images(project, 1)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE)
    kwargs = {"prompts": ["kitten"], **change}
    with pytest.raises(ValidationError) as refused:
        start(project, manager, project.classes.get(name="cat"), **kwargs)
    assert words in " ".join(refused.value.message_dict[field])
    assert not PromptLabRun.objects.exists()


def test_no_done_image_is_a_clear_refusal(project, manager, task_calls):
    plain_images(project, 2)  # new, not reviewed
    with pytest.raises(ValidationError) as refused:
        start(project, manager, project.classes.get(name="cat"), ["kitten"])
    assert "reviewed as done" in " ".join(refused.value.messages)


def test_only_managers_start_a_run_and_only_for_a_class_of_the_project(
    project, annotator, manager, foreign, task_calls
):
    (image,) = plain_images(project, 1)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DONE)
    with pytest.raises(PermissionDenied):
        start(project, annotator, project.classes.get(name="cat"), ["kitten"])
    with pytest.raises(ValidationError) as refused:
        start(project, manager, foreign.label_class, ["kitten"])
    assert "not a class of this project" in refused.value.message_dict["label_class"][0]


# Failures and cancel -----------------------------------------------------------------------------


def test_a_candidate_the_detector_refuses_fails_with_the_reason_and_the_others_go_on(
    crafted, manager, task_calls, monkeypatch
):
    project, _, cat, _ = crafted

    class Refusing(CraftedDetector):
        def detect(self, images, prompts, **kwargs):
            if prompts[0].text == "beta":
                raise InferenceError("The prompt is too long for this model.")
            return super().detect(images, prompts, **kwargs)

    refusing = Refusing()
    monkeypatch.setattr(registry, "get_detector", lambda config, name: refusing)
    run = start(project, manager, cat, ["alpha", "beta"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    run.refresh_from_db()
    candidates = by_prompt(run)
    assert run.status == JobStatus.SUCCEEDED
    assert candidates["beta"].status == JobStatus.FAILED and "too long" in candidates["beta"].error
    assert candidates["alpha"].status == JobStatus.SUCCEEDED


def test_a_bug_fails_the_run_with_the_reason(crafted, manager, task_calls, monkeypatch):
    project, _, cat, _ = crafted

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(prompt_lab, "evaluate", broken)
    run = start(project, manager, cat, ["alpha"])
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "RuntimeError: boom" in run.error
    assert {c.status for c in run.candidates.all()} == {JobStatus.FAILED}
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is False  # not queued any more: nothing runs


def test_a_missing_image_file_fails_the_candidates_with_its_name(crafted, manager, task_calls):
    project, images, cat, _ = crafted
    images[0].file.delete(save=False)
    run = start(project, manager, cat, ["alpha"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    candidates = list(run.candidates.all())
    assert all(c.status == JobStatus.FAILED and "missing" in c.error for c in candidates)


def test_a_cancelled_run_stops_and_writes_no_more_figures(crafted, manager, task_calls, monkeypatch):
    project, _, cat, detector = crafted
    run = start(project, manager, cat, ["alpha", "beta"])
    detector.on_call = lambda: prompt_lab.prompt_lab_run_cancel(run=run)
    prompt_lab.prompt_lab_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert len(detector.calls) == 1  # the baseline's batch; nothing after the cancel
    assert {c.status for c in run.candidates.all()} == {JobStatus.CANCELLED}
    assert all(c.scores is None for c in run.candidates.all())
    assert prompt_lab.prompt_lab_run_cancel(run=run) is False


# Use this prompt ---------------------------------------------------------------------------------


def test_use_this_prompt_sets_the_class_prompt_and_optionally_its_threshold(crafted, manager, task_calls):
    project, _, cat, _ = crafted
    run = start(project, manager, cat, ["alpha", "beta"])
    prompt_lab.prompt_lab_run(run_id=run.pk)
    candidates = by_prompt(run)
    label_class = prompt_lab.prompt_lab_candidate_use(candidate=candidates["alpha"])
    cat.refresh_from_db()
    assert label_class.pk == cat.pk and cat.prompt == "alpha" and cat.box_threshold is None
    prompt_lab.prompt_lab_candidate_use(candidate=candidates["beta"], set_threshold=True)
    cat.refresh_from_db()
    assert cat.prompt == "beta" and cat.box_threshold == pytest.approx(
        candidates["beta"].scores["best_threshold"]
    )
    # The baseline found nothing: no threshold to take from it.
    with pytest.raises(ValidationError) as refused:
        prompt_lab.prompt_lab_candidate_use(candidate=candidates["cat"], set_threshold=True)
    assert "no F1-best threshold" in " ".join(refused.value.messages)


def test_an_unmeasured_candidate_cannot_be_used(crafted, manager, task_calls):
    project, _, cat, _ = crafted
    run = start(project, manager, cat, ["alpha"])
    with pytest.raises(ValidationError):
        prompt_lab.prompt_lab_candidate_use(candidate=by_prompt(run)["alpha"])
    cat.refresh_from_db()
    assert cat.prompt == "cat"


def test_a_sam3_candidate_beside_the_grounding_dino_baseline(tiny_lab, manager, task_calls, settings):
    project, _, cat = tiny_lab
    settings.LABELGPT_DETECTORS = {
        "IDEA-Research/grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
        "sam3": "facebook/sam3",
    }
    run = start(project, manager, cat, ["a small cat"], detector="sam3")
    prompt_lab.prompt_lab_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    baseline, sam3 = run.candidates.order_by("position")
    assert (baseline.detector, baseline.prompt) == (project.detector, "cat")
    assert (sam3.detector, sam3.prompt) == ("sam3", "a small cat")
    assert baseline.status == sam3.status == JobStatus.SUCCEEDED, (baseline.error, sam3.error)
    # SAM 3 gives every detection its own mask: the mask AP is measured against the truths' masks.
    entries = DetectionCache.objects.filter(detector__contains="sam3")
    assert entries.count() == 2
    found = [p for e in entries for p in e.proposals]
    assert found and all(p["mask"] for p in found)
    assert sam3.scores["ap_mask"] is not None and 0.0 <= sam3.scores["ap_mask"] <= 1.0


def test_a_run_whose_worker_died_is_taken_over_and_a_live_one_is_left_alone(
    crafted, manager, task_calls, settings
):
    project, _, cat, detector = crafted
    run = start(project, manager, cat, ["alpha", "beta"])
    # As if the first worker died inside alpha: the baseline measured, alpha's detections cached
    # but not scored, beta not begun.
    prompt_lab.prompt_lab_run(run_id=run.pk)
    baseline_scores = by_prompt(run)["cat"].scores
    now = timezone.now()
    PromptLabRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, finished_at=None, heartbeat_at=now
    )
    PromptLabCandidate.objects.filter(run=run, prompt="alpha").update(status=JobStatus.RUNNING, scores=None)
    PromptLabCandidate.objects.filter(run=run, prompt="beta").update(status=JobStatus.QUEUED, scores=None)
    DetectionCache.objects.filter(prompt="beta").delete()
    calls = len(detector.calls)

    # Its message comes back while it still beats: nothing is done twice.
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is False
    assert len(detector.calls) == calls

    # Silent for a lease: the redelivered message takes it over.
    stale = now - timedelta(seconds=settings.LABELGPT_BATCH_LEASE_SECONDS + 1)
    PromptLabRun.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    assert prompt_lab.prompt_lab_run(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.seconds is not None
    candidates = by_prompt(run)
    assert {c.status for c in candidates.values()} == {JobStatus.SUCCEEDED}
    assert candidates["cat"].scores == baseline_scores  # kept as it was
    assert (candidates["alpha"].scores["precision"], candidates["alpha"].scores["recall"]) == (1.0, 0.5)
    assert candidates["alpha"].cached_images == 2  # alpha's detections were cached: no model
    assert detector.calls[calls:] == [("beta", 2)]
