"""Writes, by aggregate: business rules live here; views, the API and tasks call these functions."""
