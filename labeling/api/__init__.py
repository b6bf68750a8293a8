"""The REST API (issue 6): DRF views under /api/v1/, OpenAPI 3 by drf-spectacular."""
