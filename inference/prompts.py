"""Text prompts for the detector and the mapping of its token scores back to classes.

Grounding DINO scores every (query, caption token) pair. The caption is built from the class
prompts ("cat . person . coffee cup ."), and a detection is mapped back to a class through the
*character spans* of each prompt in the caption and the tokenizer's offset mapping — never by
matching decoded strings, which breaks on word pieces, repeated words and lower-casing.

Everything here is plain Python and numpy: the detector calls it with the model's per-token
probabilities (sigmoid of the logits) converted to numpy arrays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Token texts that the model treats as phrase delimiters (see SPECIAL_TOKENS in transformers'
# grounding_dino modeling: [CLS], [SEP], "." and "?"); they never belong to a phrase shown to people.
_DELIMITERS = frozenset({".", "?"})
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ClassPrompt:
    """One class as the detector sees it.

    `prompt` is the text given to the model ("a cup of coffee"); `name` is what the class is
    called. `box_threshold` is the class's own review threshold (the detector returns scores
    below it; the review page filters). `max_instances` keeps only the k best detections of the
    class per image: 1 for a referring expression such as "the mug on the left".
    """

    name: str
    prompt: str
    box_threshold: float | None = None
    max_instances: int | None = None

    @property
    def text(self) -> str:
        """The prompt as it goes into the caption (the name when the prompt is blank)."""
        return normalize_prompt(self.prompt if self.prompt and self.prompt.strip() else self.name)


@dataclass(frozen=True)
class Caption:
    """A caption for the model and, for each class prompt in it, its [start, end) character span."""

    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)


def normalize_prompt(prompt: str) -> str:
    """Lower-case, collapse white space, and drop trailing dots: " Coffee  Cup. " -> "coffee cup"."""
    text = _SPACES.sub(" ", str(prompt)).strip().lower()
    text = text.rstrip(". ").strip()
    if not text:
        raise ValueError(f"empty class prompt: {prompt!r}")
    return text


def build_caption(prompts: Sequence[str]) -> Caption:
    """The joint caption "cat . person . coffee cup ." and the character span of each prompt."""
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    cursor = 0
    for prompt in prompts:
        text = normalize_prompt(prompt)
        spans.append((cursor, cursor + len(text)))
        piece = f"{text} ."
        pieces.append(piece)
        cursor += len(piece) + 1  # the space before the next prompt
    return Caption(text=" ".join(pieces), spans=spans)


def token_class_matrix(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean (classes, tokens) matrix: token t lies in the span of class c.

    Special tokens have the empty offset (0, 0) and belong to no class; neither do the " . "
    separators between prompts, which lie outside every span.
    """
    matrix = np.zeros((len(spans), len(offsets)), dtype=bool)
    for t, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for c, (span_start, span_end) in enumerate(spans):
            if start < span_end and end > span_start:
                matrix[c, t] = True
    return matrix


def assign_classes(
    token_scores: np.ndarray, membership: np.ndarray, text_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised class choice for many detections at once.

    token_scores: (detections, tokens) probabilities (extra trailing columns, e.g. the model's
    padding to 256 text positions, are ignored); membership: `token_class_matrix(...)`.
    A token is selected when its probability is above `text_threshold` (strictly, as in
    transformers' post-processing). A class's strength is the highest probability among its
    selected tokens; the strongest class wins (ties: more selected tokens, then the lower index).
    The maximum, not the sum, so that a long prompt ("a cup of coffee", "the mug on the left")
    does not outvote a one-word class just by having more tokens above the threshold.
    Returns (class index per detection, -1 where no class token is selected; its strength).
    """
    n_classes, n_tokens = membership.shape
    scores = np.asarray(token_scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < n_tokens:
        raise ValueError(f"token_scores must be (detections, >= {n_tokens}); got {scores.shape}")
    scores = scores[:, :n_tokens]
    if n_classes == 0 or scores.shape[0] == 0:
        return np.full(scores.shape[0], -1, dtype=np.int64), np.zeros(scores.shape[0])
    selected = scores > text_threshold  # (detections, tokens)
    counts = np.zeros((scores.shape[0], n_classes), dtype=np.int64)
    strongest = np.full((scores.shape[0], n_classes), -np.inf)  # -inf: none of its tokens selected
    for c in range(n_classes):
        columns = np.flatnonzero(membership[c])
        if columns.size:
            chosen = selected[:, columns]
            counts[:, c] = chosen.sum(axis=1)
            strongest[:, c] = np.where(chosen, scores[:, columns], -np.inf).max(axis=1)
    tied = np.isfinite(strongest) & (strongest == strongest.max(axis=1, keepdims=True))
    best = np.where(tied, counts, -1).argmax(axis=1)
    rows = np.arange(scores.shape[0])
    found = tied.any(axis=1)
    classes = np.where(found, best, -1).astype(np.int64)
    strengths = np.where(found, strongest[rows, best], 0.0)
    return classes, strengths


def map_tokens_to_class(
    token_scores: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[tuple[int, int]],
    text_threshold: float,
) -> tuple[int | None, float]:
    """The class one detection belongs to, read through token spans.

    token_scores: the detection's probability per caption token (1-D, at least len(offsets)).
    offsets: the tokenizer's (start, end) character offsets per token, (0, 0) for special tokens.
    spans: `Caption.spans`. Returns (class index, strength) — the strength being the highest
    probability among the class's selected tokens — or (None, 0.0) when no class token passes
    `text_threshold` (only ".", [CLS] or [SEP] fired). A merged phrase (tokens of two classes
    selected) goes to the strongest class; a partial phrase ("coffee" of "coffee cup") to the class
    whose span holds it.
    """
    scores = np.asarray(token_scores, dtype=np.float64).reshape(1, -1)
    classes, strengths = assign_classes(scores, token_class_matrix(offsets, spans), text_threshold)
    if classes[0] < 0:
        return None, 0.0
    return int(classes[0]), float(strengths[0])


def phrase_from_tokens(
    token_scores: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    caption: str,
    text_threshold: float,
    span: tuple[int, int] | None = None,
) -> str:
    """The caption text of the selected tokens, for people: "coffee cup", "coffee", "mug left".

    Only tokens inside `span` when it is given (the detector passes the winning class's span);
    special tokens and the "." / "?" delimiters are left out. Word pieces that touch in the
    caption are joined without a space.
    """
    scores = np.asarray(token_scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] < len(offsets):
        raise ValueError(f"token_scores has {scores.shape[0]} entries for {len(offsets)} tokens")
    parts: list[str] = []
    last_end: int | None = None
    for t, (start, end) in enumerate(offsets):
        if end <= start or not scores[t] > text_threshold:
            continue
        if span is not None and not (start < span[1] and end > span[0]):
            continue
        piece = caption[start:end]
        if piece in _DELIMITERS:
            continue
        if parts and last_end == start:
            parts[-1] += piece
        else:
            parts.append(piece)
        last_end = end
    return " ".join(parts)
