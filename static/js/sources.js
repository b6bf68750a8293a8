// Where an annotation came from, in words, for the side list and the selection panel. The data
// model's source is "model", "human" or "import"; a human annotation with a mask (kept from
// click-to-segment with M / Enter, or painted with the brush) was segmented by hand, one with a
// box only was drawn. No DOM: tested under node.

/** The selection panel's words: "model proposal", "segmented by hand", "drawn by hand", "imported". */
export function sourceLabel(r) {
  if (r.source === "model") return "model proposal";
  if (r.source === "import") return "imported";
  if (r.source === "human") return hasMask(r) ? "segmented by hand" : "drawn by hand";
  return String(r.source ?? "");
}

/** The side list's short word (where a proposal shows its score): "segmented", "drawn", "import"... */
export function sourceShort(r) {
  if (r.source === "human") return hasMask(r) ? "segmented" : "drawn";
  return String(r.source ?? "");
}

function hasMask(r) {
  return Boolean(r.mask || r.polygons?.length);
}
