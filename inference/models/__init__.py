"""The model families, one module each (see inference.protocols and inference.registry):

- grounding_dino: the text-prompted box detector (transformers' Grounding DINO), for any hub id
  or folder;
- sam: Segment Anything vit_b / vit_l / vit_h (with its parts sam_decoder, the prompt side a
  web process loads, and sam_onnx, that prompt side on onnxruntime);
- tiny_sam: a tiny random SAM, what tiny mode loads for every segmenter name;
- tiny_gdino: builds a tiny random Grounding DINO checkpoint (loaded by grounding_dino).

A new family (SAM 2, HQ-SAM) is one more module here plus one entry in inference.registry.
"""
