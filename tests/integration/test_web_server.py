"""The real `tern web` (uvicorn, orchestrator/asgi_handler.py): a browser's session and the CSRF check go
through the sync middleware chain as they do under WSGI."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.contrib.auth.models import User


def test_a_browser_logs_in_to_the_admin_and_reads_the_api_docs(web_server):
    User.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    with httpx.Client(base_url=web_server.url, timeout=10, follow_redirects=True) as browser:
        form = browser.get("/admin/login/?next=/admin/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        refused = browser.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": "wrong", "username": "root", "password": "a-long-password-1"},
        )
        assert refused.status_code == 403  # the CSRF check ran
        admin = browser.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": "root", "password": "a-long-password-1"},
            headers={"Referer": web_server.url + "/admin/login/"},
        )
        assert admin.status_code == 200 and "Flows, executions and logs" in admin.text and "Log out" in admin.text
        assert browser.get("/api/v1/docs").status_code == 200
        assert browser.get("/api/v1/main/flows/search").json()["total"] == 0  # the session is a credential


def test_concurrent_requests_are_each_answered(web_server):
    User.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    auth = ("root", "a-long-password-1")

    def ask(n: int) -> int:
        return httpx.get(
            f"{web_server.url}/api/v1/main/flows/search?page={n % 3 + 1}", auth=auth, timeout=20
        ).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(ask, range(64))) == {200}
