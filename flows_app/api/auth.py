"""How a request proves who it is: a bearer token, HTTP basic (what Kestra's clients send), or the session."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions

from flows_app.services import tokens


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be `Bearer <token>`")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        user = tokens.user_of(token)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        return user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tern"'


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP basic, with a short memory: a client sends the password with every request, and checking a
    password hash costs a few hundred milliseconds on purpose. A pair checked in the last minute is
    remembered (as an HMAC, never in clear) with the user's password hash, so a changed password or a
    deactivated user is refused at once."""

    www_authenticate_realm = "tern"
    remember_seconds = 60
    _checked: dict[str, tuple[float, int, str]] = {}
    _lock = threading.Lock()

    def authenticate_credentials(self, userid, password, request=None):
        key = hmac.new(settings.SECRET_KEY.encode(), f"{userid}\0{password}".encode(), hashlib.sha256).hexdigest()
        now = time.monotonic()
        remembered = self._checked.get(key)
        if remembered and now - remembered[0] < self.remember_seconds:
            user = get_user_model().objects.filter(pk=remembered[1], is_active=True).first()
            if user is not None and user.password == remembered[2]:
                return user, None
        user, auth = super().authenticate_credentials(userid, password, request)
        with self._lock:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[key] = (now, user.pk, user.password)
        return user, auth
