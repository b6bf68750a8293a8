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


# A real WordPiece tokenizer over a tiny vocabulary, and detections worked out by hand ----------------

# "cup . coffee cups . xyz mug .": "cup" twice (classes 0 and 1), "cups" and "xyz" in word pieces.
PROMPTS = ["cup", "coffee cups", "xyz mug"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", "cat", "coffee", "cup", "mug", "##s", "x", "##y", "##z"]
TOKENS = ["[CLS]", "cup", ".", "coffee", "cup", "##s", ".", "x", "##y", "##z", "mug", ".", "[SEP]"]
# The class of each token above, by hand: None for [CLS], [SEP] and the " . " separators.
TOKEN_CLASSES = [None, 0, None, 1, 1, 1, None, 2, 2, 2, 2, None, None]
THRESHOLD = 0.3
PADDED = 16  # the model pads its text positions; the columns past the tokens must be ignored

# name: ({token index: probability}, expected class or None, its strength, the phrase, the phrase
# within the class's span). Every other token is at 0.05, the padding columns at 0.99.
DETECTIONS = {
    "one token": ({1: 0.8}, 0, 0.8, "cup", "cup"),
    "part of a prompt": ({3: 0.6}, 1, 0.6, "coffee", "coffee"),
    "word pieces": ({4: 0.5, 5: 0.7}, 1, 0.7, "cups", "cups"),
    "merged, first class strongest": ({1: 0.9, 3: 0.4, 4: 0.35}, 0, 0.9, "cup coffee cup", "cup"),
    "merged, last class strongest": ({1: 0.4, 3: 0.35, 10: 0.95}, 2, 0.95, "cup coffee mug", "mug"),
    # The sum of class 2's four tokens (2.6) beats 0.7; the strongest token decides.
    "long prompt, weaker tokens": (
        {1: 0.7, 7: 0.65, 8: 0.65, 9: 0.65, 10: 0.65},
        0,
        0.7,
        "cup xyz mug",
        "cup",
    ),
    "tie, more tokens win": ({1: 0.5, 3: 0.5, 4: 0.5}, 1, 0.5, "cup coffee cup", "coffee cup"),
    "tie, same count, lower index": ({3: 0.5, 10: 0.5}, 1, 0.5, "coffee mug", "coffee"),
    "tie of the first and last": ({1: 0.5, 10: 0.5}, 0, 0.5, "cup mug", "cup"),
    "stronger delimiters beside a class token": ({0: 0.95, 1: 0.6, 2: 0.9}, 0, 0.6, "cup", "cup"),
    "only delimiters and specials": ({0: 0.99, 2: 0.9, 6: 0.9, 11: 0.9, 12: 0.99}, None, 0.0, "", None),
    "at the threshold": ({1: 0.3}, None, 0.0, "", None),
    "just above it": ({1: 0.3001}, 0, 0.3001, "cup", "cup"),
    "nothing": ({}, None, 0.0, "", None),
}
CLASSIFIED = [name for name, row in DETECTIONS.items() if row[1] is not None]


@pytest.fixture(scope="module")
def encoded():
    """The caption of PROMPTS through a BERT WordPiece tokenizer (the `tokenizers` library, as
    transformers' fast BERT tokenizer): (caption, offsets)."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer({token: i for i, token in enumerate(VOCAB)}, lowercase=True)
    caption = build_caption(PROMPTS)
    encoding = tokenizer.encode(caption.text)
    assert encoding.tokens == TOKENS
    return caption, [tuple(pair) for pair in encoding.offsets]


def detection_scores(probabilities: dict[int, float]) -> np.ndarray:
    row = np.full(PADDED, 0.05)
    row[len(TOKENS) :] = 0.99
    for token, value in probabilities.items():
        row[token] = value
    return row


def test_the_caption_spans_and_offsets_of_the_tokenizer(encoded):
    caption, offsets = encoded

    assert caption.text == "cup . coffee cups . xyz mug ."
    assert caption.spans == [(0, 3), (6, 17), (20, 27)]
    pieces = [caption.text[a:b] for a, b in offsets]
    assert pieces == ["", "cup", ".", "coffee", "cup", "s", ".", "x", "y", "z", "mug", ".", ""]


def test_each_token_belongs_to_the_class_whose_prompt_holds_it(encoded):
    caption, offsets = encoded
    matrix = token_class_matrix(offsets, caption.spans)

    assert matrix.shape == (3, len(TOKENS))
    assert matrix.sum(axis=0).max() == 1  # no token in two classes
    assert [int(column.argmax()) if column.any() else None for column in matrix.T] == TOKEN_CLASSES


def test_assign_classes_gives_the_hand_worked_class_and_strength_of_each_detection(encoded):
    caption, offsets = encoded
    rows = np.stack([detection_scores(p) for p, *_ in DETECTIONS.values()])

    classes, strengths = assign_classes(rows, token_class_matrix(offsets, caption.spans), THRESHOLD)

    expected = {name: (-1 if row[1] is None else row[1], row[2]) for name, row in DETECTIONS.items()}
    got = {name: (int(c), float(s)) for name, c, s in zip(DETECTIONS, classes, strengths, strict=True)}
    assert got == {name: (c, pytest.approx(s)) for name, (c, s) in expected.items()}


@pytest.mark.parametrize("name", DETECTIONS)
def test_map_tokens_to_class_gives_the_hand_worked_class_and_strength(encoded, name):
    caption, offsets = encoded
    probabilities, expected_class, expected_strength, *_ = DETECTIONS[name]

    result = map_tokens_to_class(detection_scores(probabilities), offsets, caption.spans, THRESHOLD)

    assert result == (expected_class, pytest.approx(expected_strength))


@pytest.mark.parametrize("name", DETECTIONS)
def test_the_phrase_is_the_text_of_the_selected_tokens(encoded, name):
    caption, offsets = encoded
    probabilities, _, _, phrase, _ = DETECTIONS[name]

    assert phrase_from_tokens(detection_scores(probabilities), offsets, caption.text, THRESHOLD) == phrase


@pytest.mark.parametrize("name", CLASSIFIED)
def test_the_phrase_within_the_winning_span_keeps_that_class_words_only(encoded, name):
    caption, offsets = encoded
    probabilities, cls, _, _, phrase = DETECTIONS[name]
    span = caption.spans[cls]

    assert (
        phrase_from_tokens(detection_scores(probabilities), offsets, caption.text, THRESHOLD, span=span)
        == phrase
    )
