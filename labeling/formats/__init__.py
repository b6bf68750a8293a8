"""Dataset formats (DESIGN.md, flow 4): COCO, YOLO (detect / segment) and Pascal VOC.

base.py holds what export and import share (names, options, conventions); coco.py, yolo.py and
voc.py write the formats; *_import.py read them.
"""

from .base import FORMATS, ExportOptions, FormatError

__all__ = ["FORMATS", "ExportOptions", "FormatError"]
