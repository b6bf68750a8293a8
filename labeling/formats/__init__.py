"""Dataset formats (DESIGN.md, flow 4): COCO, YOLO (detect / segment) and Pascal VOC.

registry.py lists them (name → label, extension, options, writer, reader): a new format is one
module plus one entry there. base.py holds what export and import share (options, rows,
conventions); coco.py, yolo.py and voc.py write the formats; *_import.py read them into the
data classes of parsed.py. Nothing here imports labeling.services: the services import this.
"""

from .base import ExportOptions, FormatError
from .registry import (
    FORMATS,
    Format,
    export_choices,
    export_format,
    import_accept,
    import_choices,
    import_format,
    import_names,
    option_formats,
)

__all__ = [
    "FORMATS",
    "ExportOptions",
    "Format",
    "FormatError",
    "export_choices",
    "export_format",
    "import_accept",
    "import_choices",
    "import_format",
    "import_names",
    "option_formats",
]
