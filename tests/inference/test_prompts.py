"""Caption building and the phrase → class mapping through token spans (hand-made tokens)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.prompts import (
    ClassPrompt,
    assign_classes,
    build_caption,
    map_tokens_to_class,
    normalize_prompt,
    phrase_from_tokens,
    token_class_matrix,
)

# "cat . coffee cup ." as a BERT tokenizer splits it: [CLS] cat . coffee cup . [SEP]
CAPTION = "cat . coffee cup ."
OFFSETS = [(0, 0), (0, 3), (4, 5), (6, 12), (13, 16), (17, 18), (0, 0)]
SPANS = [(0, 3), (6, 16)]
CLS, CAT, DOT1, COFFEE, CUP, DOT2, SEP = range(7)


def scores(**by_token: float) -> np.ndarray:
    """Per-token probabilities: 0.05 everywhere except the named tokens."""
    names = ["CLS", "CAT", "DOT1", "COFFEE", "CUP", "DOT2", "SEP"]
    values = np.full(len(names), 0.05)
    for name, value in by_token.items():
        values[names.index(name)] = value
    return values


def test_build_caption_joins_normalised_prompts_with_dots():
    caption = build_caption(["Cat", "person.", "  Coffee   Cup . "])

    assert caption.text == "cat . person . coffee cup ."
    assert [caption.text[a:b] for a, b in caption.spans] == ["cat", "person", "coffee cup"]


def test_build_caption_spans_index_repeated_words_separately():
    caption = build_caption(["cup", "coffee cup", "cup"])

    assert caption.text == "cup . coffee cup . cup ."
    assert caption.spans == [(0, 3), (6, 16), (19, 22)]


def test_build_caption_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="empty class prompt"):
        build_caption(["cat", " . "])


def test_class_prompt_text_falls_back_to_the_name():
    assert ClassPrompt(name="Coffee cup", prompt="  ").text == "coffee cup"
    assert ClassPrompt(name="cup", prompt="A cup of coffee.").text == "a cup of coffee"
    assert normalize_prompt("The mug on the left.") == "the mug on the left"


def test_the_hand_made_offsets_match_the_caption():
    caption = build_caption(["cat", "coffee cup"])

    assert caption.text == CAPTION and caption.spans == SPANS
    assert [CAPTION[a:b] for a, b in OFFSETS] == ["", "cat", ".", "coffee", "cup", ".", ""]


def test_token_class_matrix_leaves_special_tokens_and_separators_out():
    matrix = token_class_matrix(OFFSETS, SPANS)

    assert matrix.tolist() == [
        [False, True, False, False, False, False, False],
        [False, False, False, True, True, False, False],
    ]


def test_a_single_class_token_maps_to_its_class():
    assert map_tokens_to_class(scores(CAT=0.8), OFFSETS, SPANS, 0.25) == (0, pytest.approx(0.8))


def test_a_partial_phrase_maps_to_the_class_whose_span_holds_it():
    token_scores = scores(COFFEE=0.6)

    assert map_tokens_to_class(token_scores, OFFSETS, SPANS, 0.25) == (1, pytest.approx(0.6))
    assert phrase_from_tokens(token_scores, OFFSETS, CAPTION, 0.25) == "coffee"


def test_a_merged_phrase_goes_to_the_strongest_class():
    cat_wins = scores(CAT=0.7, COFFEE=0.4, CUP=0.35)
    cup_wins = scores(CAT=0.4, COFFEE=0.3, CUP=0.9)

    assert map_tokens_to_class(cat_wins, OFFSETS, SPANS, 0.25)[0] == 0
    assert map_tokens_to_class(cup_wins, OFFSETS, SPANS, 0.25)[0] == 1
    assert phrase_from_tokens(cat_wins, OFFSETS, CAPTION, 0.25) == "cat coffee cup"
    assert phrase_from_tokens(cat_wins, OFFSETS, CAPTION, 0.25, span=SPANS[0]) == "cat"


def test_a_long_prompt_does_not_outvote_a_stronger_short_one():
    caption = build_caption(["cat", "a cup of coffee"])
    offsets = [(0, 0), (0, 3), (4, 5), (6, 7), (8, 11), (12, 14), (15, 21), (22, 23), (0, 0)]
    assert [caption.text[a:b] for a, b in offsets[1:-1]] == ["cat", ".", "a", "cup", "of", "coffee", "."]
    token_scores = np.array([0.1, 0.6, 0.1, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1])

    assert map_tokens_to_class(token_scores, offsets, caption.spans, 0.25) == (0, pytest.approx(0.6))


def test_equal_strength_goes_to_the_class_with_more_selected_tokens_then_the_first():
    assert map_tokens_to_class(scores(CAT=0.5, COFFEE=0.5, CUP=0.5), OFFSETS, SPANS, 0.25)[0] == 1
    assert map_tokens_to_class(scores(CAT=0.5, CUP=0.5), OFFSETS, SPANS, 0.25)[0] == 0


def test_no_class_when_only_dots_and_special_tokens_fire():
    token_scores = scores(CLS=0.9, DOT1=0.8, DOT2=0.7, SEP=0.95)

    assert map_tokens_to_class(token_scores, OFFSETS, SPANS, 0.25) == (None, 0.0)
    assert phrase_from_tokens(token_scores, OFFSETS, CAPTION, 0.25) == ""


def test_the_text_threshold_is_strict():
    assert map_tokens_to_class(scores(CAT=0.25), OFFSETS, SPANS, 0.25) == (None, 0.0)
    assert map_tokens_to_class(scores(CAT=0.2501), OFFSETS, SPANS, 0.25)[0] == 0


def test_scores_padded_to_the_model_text_length_are_accepted_but_short_ones_are_not():
    padded = np.concatenate([scores(CUP=0.7), np.zeros(256 - len(OFFSETS))])

    assert map_tokens_to_class(padded, OFFSETS, SPANS, 0.25)[0] == 1
    with pytest.raises(ValueError):
        map_tokens_to_class(np.array([0.1, 0.9]), OFFSETS, SPANS, 0.25)


def test_word_pieces_are_joined_in_the_phrase():
    caption = build_caption(["xyz mug"])  # x ##y ##z mug
    offsets = [(0, 0), (0, 1), (1, 2), (2, 3), (4, 7), (8, 9), (0, 0)]
    token_scores = np.array([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0])

    assert phrase_from_tokens(token_scores, offsets, caption.text, 0.5) == "xyz mug"


def test_the_vectorised_assignment_agrees_with_the_single_detection_mapping():
    rng = np.random.default_rng(7)
    many = rng.uniform(0, 1, size=(200, len(OFFSETS)))
    classes, strengths = assign_classes(many, token_class_matrix(OFFSETS, SPANS), 0.5)

    for row, (cls, strength) in enumerate(zip(classes, strengths, strict=True)):
        expected = map_tokens_to_class(many[row], OFFSETS, SPANS, 0.5)
        assert (None if cls < 0 else int(cls), float(strength)) == expected
    assert {int(c) for c in classes} == {-1, 0, 1}
