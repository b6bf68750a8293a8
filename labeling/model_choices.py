"""The detectors and segmenters a project may choose: the lists the admin configures in settings
(LABELGPT_DETECTORS: name → hub id or local folder; LABELGPT_SEGMENTERS: names a segmenter family
offers, with their checkpoints). A project stores a name only; the model's clean(), the form and
the API's serializer offer and accept these names and nothing else, and the workers resolve a
name through `model_config` (labeling.services.prelabel), which hands these lists to
inference.registry.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError

from inference import registry


def detectors() -> dict[str, str]:
    """Detector name → hub id or local folder, in the admin's order."""
    return dict(settings.LABELGPT_DETECTORS)


def segmenters() -> dict[str, str]:
    """Segmenter name → its checkpoint (local file or URL; "" for the family's official one):
    LABELGPT_SEGMENTERS, else every name a segmenter family offers; a name's checkpoint from
    the list, else LABELGPT_SAM_CHECKPOINT_<NAME>."""
    listed = settings.LABELGPT_SEGMENTERS
    names = registry.segmenter_names() if listed is None else list(listed)
    return {
        name: ((listed or {}).get(name) or settings.LABELGPT_SAM_CHECKPOINTS.get(name, "")) for name in names
    }


def detector_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in detectors()]


def segmenter_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in segmenters()]


def is_sam3(name: str) -> bool:
    """Whether the listed detector `name` is a SAM 3 model (by its name or its source)."""
    return (
        registry.ModelConfig(detectors=detectors()).detector_segments(name) if name in detectors() else False
    )


def exemplar_detector_choices() -> list[tuple[str, str]]:
    """What "find more like this" may use on a project whose detector is not SAM 3: none, or one
    of the listed detectors that is SAM 3."""
    return [("", "None (find more is unavailable)")] + [(name, name) for name in detectors() if is_sam3(name)]


def exemplar_errors(*, exemplar_detector: str) -> dict[str, str]:
    """Field → message for an exemplar detector that is not a listed SAM 3 model."""
    if not exemplar_detector or is_sam3(exemplar_detector):
        return {}
    offered = [name for name, _ in exemplar_detector_choices() if name]
    return {
        "exemplar_detector": (
            f"Choose one of this server's SAM 3 models: {', '.join(offered)}, or none."
            if offered
            else "This server lists no SAM 3 model (LABELGPT_DETECTORS): leave it blank."
        )
    }


NO_SAM3 = "Find more needs a SAM 3 model: ask a manager to choose one in the project settings."


def find_more_detector(*, detector: str, exemplar_detector: str) -> tuple[str | None, str]:
    """(the SAM 3 name "find more like this" uses on a project, "") or (None, why it cannot):
    a SAM 3 project's own detector, else its exemplar detector while the list still offers it."""
    if is_sam3(detector):
        return detector, ""
    if exemplar_detector and is_sam3(exemplar_detector):
        return exemplar_detector, ""
    return None, NO_SAM3


def default_detector(current: str) -> str:
    """`current` (the model field's default) when the list offers it, else the list's first."""
    names = list(detectors())
    return current if current in names else names[0]


def default_segmenter(current: str) -> str:
    names = list(segmenters())
    return current if current in names else names[0]


def model_errors(*, detector: str, segmenter: str) -> dict[str, str]:
    """Field → message for a detector or segmenter name the lists do not offer."""
    errors = {}
    if detector not in detectors():
        errors["detector"] = f"Choose one of the detectors this server offers: {', '.join(detectors())}."
    if segmenter not in segmenters():
        errors["segmenter"] = f"Choose one of the segmenters this server offers: {', '.join(segmenters())}."
    return errors


def validate(*, detector: str, segmenter: str) -> None:
    errors = model_errors(detector=detector, segmenter=segmenter)
    if errors:
        raise ValidationError(errors)


@checks.register()
def check_model_lists(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """`manage.py check` (and every server start): each listed segmenter is one a family offers."""
    offered = set(registry.segmenter_names())
    unknown = [name for name in settings.LABELGPT_SEGMENTERS or () if name not in offered]
    if not unknown:
        return []
    return [
        checks.Error(
            f"LABELGPT_SEGMENTERS names {', '.join(unknown)}, which no segmenter family offers.",
            hint=f"Use names among: {', '.join(sorted(offered))}.",
            id="labeling.E101",
        )
    ]
