"""Reads, by aggregate: each selector makes a constant number of queries whatever the project's size."""
