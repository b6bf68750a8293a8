"""Failed-login limits (django-axes) on the login form and the token endpoint, keyed by user name and
by client address; the client address from X-Forwarded-For only behind trusted proxies (one
setting for the lockout and the API's throttles); lockouts and throttles shared by web processes
(real `runserver` processes on the test database); password change and reset."""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from axes.helpers import get_client_ip_address
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.request import Request

from labeling.api.views import ClientRateThrottle
from tests.conftest import PASSWORD, make_user
from tests.integration.conftest import test_database_url

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"
SMTP = "django.core.mail.backends.smtp.EmailBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
START_TIMEOUT_S = 60
NEW = "a-new-pass-phrase"


def limit() -> int:
    return django_settings.AXES_FAILURE_LIMIT


def settings_for(monkeypatch, **env: str) -> dict:
    """webapp/settings.py run again with these environment variables: the values it derives."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "webapp" / "settings.py"))


@pytest.fixture
def trusted_proxies(settings, monkeypatch):
    """`trusted_proxies(n)`: apply what LABELGPT_TRUSTED_PROXIES=n sets."""

    def apply(count: int) -> None:
        derived = settings_for(monkeypatch, LABELGPT_TRUSTED_PROXIES=str(count))
        settings.LABELGPT_TRUSTED_PROXIES = derived["LABELGPT_TRUSTED_PROXIES"]
        settings.REST_FRAMEWORK = derived["REST_FRAMEWORK"]
        assert derived["AXES_CLIENT_IP_CALLABLE"] == "labeling.client_address.client_address"

    return apply


def form_login(client, username: str, password: str, *, address: str = "127.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def token_login(client, username: str, password: str, *, address: str = "127.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(
        TOKEN, {"username": username, "password": password}, content_type="application/json", **extra
    )


def assert_locked_page(response) -> None:
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in response.client.session


def assert_locked_json(response) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith("Too many failed logins")
    assert int(response["Retry-After"]) > 0


# The form --------------------------------------------------------------------------------------


def test_the_form_locks_a_user_name_out_after_the_limit_whatever_the_address(client, annotator):
    for attempt in range(1, limit()):
        response = form_login(client, "anna", "wrong", address=f"198.51.100.{attempt}")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert_locked_page(form_login(client, "anna", "wrong", address="198.51.100.200"))
    # The right password from a new address is refused too while the lockout lasts.
    assert_locked_page(form_login(client, "anna", PASSWORD, address="198.51.100.201"))
    # Another user is not affected.
    make_user("bert")
    assert form_login(client, "bert", PASSWORD, address="198.51.100.202").status_code == 302


def test_the_form_locks_an_address_out_across_user_names(client, annotator):
    for attempt in range(limit()):
        response = form_login(client, f"guess{attempt}", "wrong", address="198.51.100.9")
    assert_locked_page(response)
    assert_locked_page(form_login(client, "anna", PASSWORD, address="198.51.100.9"))
    assert form_login(client, "anna", PASSWORD, address="198.51.100.10").status_code == 302


def test_the_locked_login_page_keeps_the_site_look_and_the_reset_link(client, annotator):
    for attempt in range(limit()):
        response = form_login(client, "anna", "wrong", address=f"198.51.100.{attempt}")
    assert_locked_page(response)
    body = response.content.decode()
    assert "<h1>Log in</h1>" in body and 'value="anna"' in body
    assert reverse("password_reset") in body
    assert "Please enter a correct username and password" not in body


def test_rotating_x_forwarded_for_without_trusted_proxies_does_not_escape(client, annotator, trusted_proxies):
    trusted_proxies(0)
    for attempt in range(limit()):
        response = form_login(client, f"guess{attempt}", "wrong", forwarded=f"203.0.113.{attempt}")
    assert_locked_page(response)
    assert_locked_page(form_login(client, "anna", PASSWORD, forwarded="203.0.113.99"))


def test_behind_one_trusted_proxy_each_client_is_counted_apart(client, annotator, trusted_proxies):
    trusted_proxies(1)
    # The proxy (127.0.0.1) appends the client's address; what the client wrote before it is ignored.
    for attempt in range(limit()):
        response = form_login(client, f"guess{attempt}", "wrong", forwarded=f"10.9.9.{attempt}, 203.0.113.7")
    assert_locked_page(response)
    assert_locked_page(form_login(client, "anna", PASSWORD, forwarded="203.0.113.7"))
    # Another client behind the same proxy logs in.
    assert form_login(client, "anna", PASSWORD, forwarded="203.0.113.8").status_code == 302


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "127.0.0.1", None, "127.0.0.1"),
        (0, "127.0.0.1", "203.0.113.5", "127.0.0.1"),
        (0, "10.0.0.2", "198.51.100.1, 203.0.113.5", "10.0.0.2"),
        (1, "127.0.0.1", None, "127.0.0.1"),
        (1, "127.0.0.1", "203.0.113.5", "203.0.113.5"),
        (1, "10.0.0.2", "198.51.100.1, 203.0.113.5", "203.0.113.5"),
        (1, "10.0.0.2", "garbage,203.0.113.5", "203.0.113.5"),
        (2, "10.0.0.2", "garbage, 198.51.100.1, 203.0.113.5", "198.51.100.1"),
        (2, "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # Fewer proxies in front than configured: what the client wrote is not an address.
        (2, "10.0.0.2", "garbage, 203.0.113.5", "10.0.0.2"),
    ],
)
def test_the_lockout_and_the_api_throttle_see_the_same_client_address(
    trusted_proxies, proxies, remote, forwarded, expected
):
    trusted_proxies(proxies)
    extra = {"REMOTE_ADDR": remote} | ({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})
    request = RequestFactory().post(TOKEN, **extra)
    assert get_client_ip_address(request) == expected
    assert ClientRateThrottle().get_ident(Request(request)) == expected


# The token endpoint ----------------------------------------------------------------------------


def test_the_token_endpoint_locks_out_with_429_json(client, annotator):
    for attempt in range(1, limit()):
        response = token_login(client, "anna", "wrong", address=f"198.51.100.{attempt}")
        assert response.status_code == 400
        assert response.json()["error"] == "Unable to log in with provided credentials."
    assert_locked_json(token_login(client, "anna", "wrong", address="198.51.100.77"))
    assert_locked_json(token_login(client, "anna", PASSWORD, address="198.51.100.78"))


def test_the_token_endpoint_locks_an_address_out_and_ignores_rotated_forwarded_for(
    client, annotator, trusted_proxies
):
    trusted_proxies(0)
    for attempt in range(limit()):
        response = token_login(client, f"guess{attempt}", "wrong", forwarded=f"203.0.113.{attempt}")
    assert_locked_json(response)
    assert_locked_json(token_login(client, "anna", PASSWORD, forwarded="203.0.113.250"))
    assert token_login(client, "anna", PASSWORD, address="198.51.100.3").status_code == 200


def test_failures_on_the_form_lock_the_token_endpoint_too(client, annotator):
    for attempt in range(limit()):
        form_login(client, "anna", "wrong", address=f"198.51.100.{attempt}")
    assert_locked_json(token_login(client, "anna", PASSWORD, address="198.51.100.99"))


# Two web processes -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Servers:
    """Two `manage.py runserver --noreload` processes on the test database, nothing else shared."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        for index in range(2):
            port = _free_port()
            log = log_dir / f"web-{index}.log"
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            self.urls.append(f"http://127.0.0.1:{port}")
            self.logs.append(log)
        for proc, url, log in zip(self.procs, self.urls, self.logs, strict=True):
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    if requests.get(f"{url}/healthz/", timeout=5).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"the web server at {url} did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    """`two_servers(**env)`: start two web processes (stopped after the test)."""
    if connection.vendor != "postgresql":
        pytest.fail("the two-process tests need PostgreSQL (DATABASE_URL=postgres://...)")
    started: list[Servers] = []

    def start(**overrides: str) -> Servers:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"CACHE_URL", "LABELGPT_TRUSTED_PROXIES", "DEBUG"}
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "webapp.settings",
                "DATABASE_URL": test_database_url(connection.settings_dict),
                "DB_CONN_MAX_AGE": "0",  # no idle connection left to block the test DB's teardown
                "LABELGPT_VAR_DIR": str(tmp_path / "var"),
                "MEDIA_ROOT": str(tmp_path / "media"),
                "PYTHONUNBUFFERED": "1",
                **overrides,
            }
        )
        servers = Servers(env, tmp_path)
        started.append(servers)
        return servers

    yield start
    for servers in started:
        servers.stop()


def test_a_lockout_is_shared_by_two_web_processes(two_servers, annotator):
    servers = two_servers(LABELGPT_LOGIN_FAILURE_LIMIT="4", LABELGPT_AUTH_THROTTLE="1000/min")
    answers = []
    for attempt in range(4):
        url = servers.urls[attempt % 2]  # alternate: each process sees only half of the failures
        answers.append(
            requests.post(
                f"{url}{TOKEN}",
                json={"username": f"guess{attempt}", "password": "wrong"},
                headers={"X-Forwarded-For": f"203.0.113.{attempt}"},
                timeout=30,
            )
        )
    assert [answer.status_code for answer in answers] == [400, 400, 400, 429]
    assert answers[-1].json()["error"].startswith("Too many failed logins")
    # The right password on either process, through the API or the form, is refused.
    for url in servers.urls:
        answer = requests.post(f"{url}{TOKEN}", json={"username": "anna", "password": PASSWORD}, timeout=30)
        assert answer.status_code == 429
    session = requests.Session()
    page = session.get(f"{servers.urls[1]}{LOGIN}", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{servers.urls[1]}{LOGIN}",
        data={"username": "anna", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{servers.urls[1]}{LOGIN}"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 429
    assert "Too many failed logins" in answer.text


def test_the_api_throttle_is_shared_by_two_web_processes(two_servers, annotator):
    servers = two_servers(LABELGPT_LOGIN_FAILURE_LIMIT="1000", LABELGPT_AUTH_THROTTLE="3/min")
    codes = [
        requests.post(
            f"{servers.urls[attempt % 2]}{TOKEN}",
            json={"username": "anna", "password": "wrong"},
            timeout=30,
        )
        for attempt in range(4)
    ]
    assert [answer.status_code for answer in codes] == [400, 400, 400, 429]
    assert codes[-1].json()["error"].startswith("Request was throttled.")
    assert int(codes[-1].headers["Retry-After"]) > 0


# Password change and reset ---------------------------------------------------------------------


def test_the_user_menu_and_the_login_page_link_to_the_password_pages(client, client_for, annotator):
    assert reverse("password_reset") in client.get(LOGIN).content.decode()
    page = client_for(annotator).get(reverse("project-list")).content.decode()
    assert reverse("password_change") in page


def test_password_change(client_for, annotator):
    client = client_for(annotator)
    assert client.get(reverse("password_change")).status_code == 200
    refused = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW},
    )
    assert refused.status_code == 200
    assert "Your old password was entered incorrectly" in refused.content.decode()
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-pass-phrase",
            "new_password2": "a-new-pass-phrase",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert "Password changed" in client.get(response["Location"]).content.decode()
    annotator.refresh_from_db()
    assert annotator.check_password("a-new-pass-phrase")


def test_password_change_needs_a_login(client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_password_reset_without_mail_settings_says_to_ask_an_administrator(client, settings, annotator):
    settings.EMAIL_BACKEND = SMTP
    settings.EMAIL_HOST = ""
    annotator.email = "anna@example.com"
    annotator.save()
    for response in (
        client.get(reverse("password_reset")),
        client.post(reverse("password_reset"), {"email": "anna@example.com"}),
    ):
        assert response.status_code == 200
        body = response.content.decode()
        assert "ask an administrator" in body
        assert "<form" not in body.split("<main>")[1]
    assert mail.outbox == []


def test_password_reset_sends_a_mail_with_a_working_link(client, settings, annotator):
    settings.EMAIL_BACKEND = LOCMEM
    annotator.email = "anna@example.com"
    annotator.save()
    assert client.get(reverse("password_reset")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": "anna@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["anna@example.com"] and "anna" in message.body
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)
    form_url = client.get(link)["Location"]  # Django moves the token into the session
    assert "Choose a new password" in client.get(form_url).content.decode()
    done = client.post(form_url, {"new_password1": "a-new-pass-phrase", "new_password2": "a-new-pass-phrase"})
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    annotator.refresh_from_db()
    assert annotator.check_password("a-new-pass-phrase")
    assert form_login(client, "anna", "a-new-pass-phrase").status_code == 302
    # The link works once.
    assert "not valid" in client.get(link, follow=True).content.decode()


# The shared cache ------------------------------------------------------------------------------


def test_migrate_creates_the_database_cache_table(db, settings, monkeypatch):
    """Without CACHE_URL the cache is a table: every place that runs `migrate` gets it."""
    derived = settings_for(monkeypatch, CACHE_URL="")
    settings.CACHES = derived["CACHES"]
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    table = settings.CACHES["default"]["LOCATION"]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(table)}")
    assert table not in connection.introspection.table_names()
    call_command("migrate", interactive=False, verbosity=0)
    assert table in connection.introspection.table_names()
