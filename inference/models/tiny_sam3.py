"""A tiny, randomly initialised SAM 3 for tests and offline smoke runs.

`build_tiny_sam3(folder)` writes a complete checkpoint folder — config, weights, image processor
and a CLIP BPE tokenizer whose vocabulary and merges are written here (letters plus a few dozen
whole words) — that `Sam3Detector.load(folder)` (and transformers' `Sam3Model` /
`Sam3Processor`) load offline. The architecture is the real one, only very small: a 2-layer ViT
of width 32 on 112x112 images, a 1-layer CLIP text encoder, 1-layer DETR encoder and decoder with
20 queries. Its masks are junk (random weights); its plumbing is real.
"""

from __future__ import annotations

from pathlib import Path

# Whole words in the tiny vocabulary (anything else is spelt with letters).
WORDS = """
a an the of on in at with and or to left right top bottom front back big small
red blue green white black yellow
cat dog person man woman child rocket car bus truck bicycle bird horse cow sheep
coffee cup mug bottle glass chair table sofa couch bed laptop phone book plant
astronaut flag helmet coin camera tree house sky road
"""

IMAGE_SIZE = 112


def tiny_bpe() -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of a CLIP-style byte-level BPE: the special tokens, each letter alone and
    word-final ("a", "a</w>"), and merges that spell each of the tiny words whole."""
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789.,-'":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[str] = []
    for word in dict.fromkeys(WORDS.split()):
        if len(word) < 2:
            continue
        left = word[0]
        for index, char in enumerate(word[1:], start=1):
            right = char + ("</w>" if index == len(word) - 1 else "")
            merge = f"{left} {right}"
            if merge not in merges:
                merges.append(merge)
            left = left + right
            vocab.setdefault(left, len(vocab))
    return vocab, merges


def build_tiny_sam3(folder: Path, *, seed: int = 0) -> Path:
    """Write a tiny random SAM 3 checkpoint into `folder` and return it. Seeded: two builds with
    the same seed have identical weights; the global torch RNG state is left as it was."""
    import torch
    from transformers import CLIPTokenizer, Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_bpe()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges])
    if tokenizer.convert_tokens_to_ids("cat</w>") != vocab["cat</w>"]:
        raise RuntimeError("the tiny SAM 3 tokenizer did not take its vocabulary")
    patches = IMAGE_SIZE // 14
    small = {"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": IMAGE_SIZE,
                "patch_size": 14,
                "window_size": 4,
                "global_attn_indexes": [1],
                "pretrain_image_size": 56,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[patches * 4] * 2, [patches * 2] * 2, [patches] * 2],
        },
        text_config={
            "model_type": "clip_text_model",
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "projection_dim": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        geometry_encoder_config=dict(small),
        detr_encoder_config=dict(small),
        detr_decoder_config={
            "hidden_size": 32,
            "num_layers": 1,
            "num_queries": 20,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(config).eval()
    image_processor = Sam3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        mask_size={"height": patches * 4, "width": patches * 4},
    )
    processor = Sam3Processor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
