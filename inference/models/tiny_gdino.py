"""A tiny, randomly initialised Grounding DINO for tests and offline smoke runs.

`build_tiny_grounding_dino(folder)` writes a complete checkpoint folder — config, weights,
image processor and tokenizer — that `GroundingDinoDetector.load(folder)` (and transformers'
`AutoProcessor` / `AutoModelForZeroShotObjectDetection`) load offline. The architecture is the
real one, only very small: a 2-stage Swin backbone, a 1-layer BERT, d_model 32, 30 queries and
images resized to at most 160x256, so a forward pass takes a fraction of a second on a CPU and
the folder is well under 1 MB. Its boxes are junk (random weights); its plumbing is real.
"""

from __future__ import annotations

from pathlib import Path

# Whole words in the tiny vocabulary (anything else is spelt with letters and "##" pieces).
_WORDS = """
a an the of on in at with and or to left right top bottom front back big small
red blue green white black yellow
cat dog person man woman child rocket car bus truck bicycle bird horse cow sheep
coffee cup mug bottle glass chair table sofa couch bed laptop phone book plant
astronaut flag helmet coin camera tree house sky road
"""
# Punctuation at the ids it has in bert-base-uncased's vocabulary (999..1030).
_BERT_PUNCTUATION = {
    999: "!",
    1000: '"',
    1001: "#",
    1002: "$",
    1003: "%",
    1004: "&",
    1005: "'",
    1006: "(",
    1007: ")",
    1008: "*",
    1009: "+",
    1010: ",",
    1011: "-",
    1012: ".",
    1013: "/",
    **{1014 + d: str(d) for d in range(10)},
    1024: ":",
    1025: ";",
    1026: "<",
    1027: "=",
    1028: ">",
    1029: "?",
    1030: "@",
}
# Random init makes every query/token logit huge (all scores ~1.0); scaling the decoder's output
# norm spreads the scores over roughly (0.3, 0.99), so that thresholds select something.
_DECODER_NORM_SCALE = 0.25
_VOCAB_FILE = "vocab.txt"


def tiny_vocabulary() -> list[str]:
    """A BERT-layout vocabulary: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, "."=1012,
    "?"=1029 — the ids transformers' Grounding DINO hard-codes as phrase delimiters — then
    letters, "##" letters and digits, and a few dozen whole words (cat, coffee, cup, mug, left...)."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    unused = 99
    while len(vocab) <= max(_BERT_PUNCTUATION):
        token = _BERT_PUNCTUATION.get(len(vocab))
        if token is None:
            token = f"[unused{unused}]"
            unused += 1
        vocab.append(token)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab += list(letters)
    vocab += [f"##{c}" for c in letters] + [f"##{d}" for d in range(10)]
    vocab += [w for w in _WORDS.split() if w not in vocab]
    if len(vocab) != len(set(vocab)):
        raise RuntimeError("duplicate tokens in the tiny vocabulary")
    return vocab


def make_tokenizer(vocab: list[str], vocab_file: Path):
    """A BERT WordPiece tokenizer over `vocab`, with offsets (tokenizers backend).

    transformers 5 made `BertTokenizer` the tokenizers-backed class (`BertTokenizerFast` is an
    alias) whose constructor takes `vocab=` (a dict); a `vocab_file=` keyword is silently ignored
    there and leaves a 5-token vocabulary, so check the result.
    """
    import transformers

    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    ids = {token: i for i, token in enumerate(vocab)}
    if int(transformers.__version__.split(".")[0]) >= 5:
        tokenizer = transformers.BertTokenizer(vocab=ids)
    else:  # transformers 4.x: the fast tokenizer reads the file
        tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab_file))
    if tokenizer.convert_tokens_to_ids("cat") != ids["cat"] or tokenizer.cls_token_id != 101:
        raise RuntimeError("the tiny tokenizer did not take its vocabulary")
    return tokenizer


def build_tiny_grounding_dino(folder: Path, *, seed: int = 0) -> Path:
    """Write a tiny random Grounding DINO checkpoint into `folder` and return it.

    Seeded: two builds with the same seed have identical weights. The global torch RNG state is
    left as it was.
    """
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocabulary()
    tokenizer = make_tokenizer(vocab, folder / _VOCAB_FILE)

    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=224,
            patch_size=4,
            embed_dim=16,
            depths=[1, 1],
            num_heads=[1, 2],
            window_size=7,
            out_indices=[1, 2],
        ),
        text_config=BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        num_feature_levels=3,
        num_queries=30,
        max_text_len=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(config).eval()
        with torch.no_grad():
            model.model.decoder.layer_norm.weight.mul_(_DECODER_NORM_SCALE)

    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 160, "longest_edge": 256})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
