"""The benchmarks' query count header (labeling.middleware.QueryCountHeaderMiddleware): off by
default, and when installed it counts every query of the request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from labeling.middleware import QueryCountHeaderMiddleware


def test_off_by_default(client_for, manager):
    assert settings.LABELGPT_QUERY_COUNT_HEADER is False
    assert "labeling.middleware.QueryCountHeaderMiddleware" not in settings.MIDDLEWARE
    response = client_for(manager).get(reverse("project-list"))
    assert response.status_code == 200 and "X-Query-Count" not in response


@pytest.mark.django_db
def test_counts_the_queries_of_the_request():
    def view(request):
        users = get_user_model().objects
        users.filter(username="a").exists()
        users.filter(username="b").exists()
        list(users.all())
        return HttpResponse("ok")

    middleware = QueryCountHeaderMiddleware(view)
    assert middleware(RequestFactory().get("/"))["X-Query-Count"] == "3"
    idle = QueryCountHeaderMiddleware(lambda request: HttpResponse())
    assert idle(RequestFactory().get("/"))["X-Query-Count"] == "0"
