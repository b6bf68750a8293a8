"""A bounded fuzz run (schemathesis) over every operation of the OpenAPI schema with a manager's
token, against the WSGI app and the test database: whatever the input, no 5xx."""

from __future__ import annotations

from collections import Counter

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from rest_framework.authtoken.models import Token

from webapp.wsgi import application

# The tiny models: a valid click-to-segment gets its 202 (a server without SAM weights answers 503).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_calls", "tiny_models", "clear_throttles")]

MAX_EXAMPLES = 12  # per operation: what bounds the run's length (no time limit is asserted)
# Revoking the fuzzer's own token would turn the rest of the run into 401s.
SKIP = {("DELETE", "/api/v1/auth/token/")}


@pytest.fixture
def _keep_the_test_connection():
    """Like Django's test Client: a request through the WSGI app must not close the connection
    that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_fuzzing_every_operation_gives_no_server_error(world, manager, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "1000/min"}}
    token = Token.objects.create(user=manager).key
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    ids = {
        "project_id": world.project.pk,
        "image_id": world.image.pk,
        "annotation_id": world.proposal.pk,
        "job_id": world.job.pk,
        "export_id": world.export.pk,
    }
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    # Deletions last: the other operations run on the objects before they go.
    all_operations = sorted(
        (result.ok() for result in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE"
    )
    for operation in all_operations:
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            if case.path_parameters:
                case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
            response = case.call(headers={"Authorization": f"Token {token}"})
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {case.body!r:.200}"
                )

        run()
    assert operations >= 30
    assert not failures, failures[:10]
    # The run reached the services, not only the input checks.
    assert sum(n for code, n in statuses.items() if code < 300) >= operations, statuses
