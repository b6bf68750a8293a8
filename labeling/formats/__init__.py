"""Dataset formats (docs/architecture.md, "Export and import"): COCO, YOLO (detect / segment) and Pascal VOC.

registry.py lists them (name → label, extension, options, writer, reader): a new format is one
module plus one entry there. base.py holds what export and import share (options, rows,
conventions); coco.py, yolo.py and voc.py write the formats; *_import.py read them into the
data classes of parsed.py. Nothing here imports labeling.services: the services import this.
This file imports nothing, so that importing one module (base, parsed) does not load them all.
"""
