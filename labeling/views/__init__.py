"""Page views, by aggregate: adapters that parse input, check access (labeling.access), call one
service or selector and render."""
