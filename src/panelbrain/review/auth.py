"""Who is signed in to the reviewer page: Cognito ID tokens, the session cookie and its CSRF token.

A reviewer signs in to the user pool (managed login when deployed, the local ``/login`` page on
``panelbrain serve``); the pool's ID token is the session, kept in an HttpOnly cookie. Every
request that reads the reviewer page or decides on it verifies that token here, as Amazon
Cognito says a relying party must: the RS256 signature against the pool's published keys (JWKS),
then ``iss`` (the pool), ``aud`` (our app client), ``token_use`` (``id``) and ``exp``:
https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html

The forms on the page carry a CSRF token, an HMAC of the session, so another site cannot make a
signed-in reviewer's browser decide: the cookie alone never suffices to decide.

Pure apart from the key fetch (``urllib``); no ``panelbrain.aws`` and no botocore.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from panelbrain.errors import RefusedError
from panelbrain.review.models import Principal

SESSION_COOKIE = "pb_session"
SIGNIN_COOKIE = "pb_signin"  # the sign-in's state and PKCE verifier, until the callback
SIGNIN_COOKIE_MAX_AGE_S = 600
# Keys are fetched again at most this often when a token names a key id we do not hold (Cognito
# rotates its signing keys; a forged kid must not make us fetch on every request).
JWKS_REFETCH_S = 300.0
LEEWAY_S = 30  # clock skew allowed on iat/exp
FETCH_TIMEOUT_S = 5.0


class AuthError(RefusedError):
    """Not signed in, or a session or CSRF token that does not hold; ``status`` is 401 or 403."""


def fetch_json(url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> Any:
    """GET (or POST ``data`` to) ``url`` and parse JSON. https only, except a ``file:`` URL
    (the local engine's emulator publishes its pool's keys as a file, not at a URL)."""
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "file"):
        raise AuthError(f"refusing to fetch {url[:120]!r}: only https (or a local file) is allowed", 500)
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # scheme checked above
        return json.loads(response.read())


@dataclass
class JwksCache:
    """The user pool's public keys, fetched on first use and again when a token names an
    unknown key id (after a rotation), never more than once per :data:`JWKS_REFETCH_S`."""

    url: str
    fetch: Callable[[str], Any] = fetch_json
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, Any] | None = None
    _fetched_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_set(self, kid: str | None) -> dict[str, Any]:
        with self._lock:
            known = self._keys is not None and any(k.get("kid") == kid for k in self._keys.get("keys", []))
            if not known and self.clock() - self._fetched_at >= JWKS_REFETCH_S:
                document = self.fetch(self.url)
                if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                    raise AuthError(f"the user pool's key set at {self.url} is not a JWKS document", 500)
                self._keys, self._fetched_at = document, self.clock()
            return self._keys or {"keys": []}


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies a user pool ID token for one app client."""

    issuer: str  # https://cognito-idp.<region>.amazonaws.com/<pool id>
    client_id: str
    keys: JwksCache
    clock: Callable[[], float] = time.time

    @classmethod
    def for_pool(
        cls,
        pool_id: str,
        client_id: str,
        *,
        jwks_url: str | None = None,
        fetch: Callable[[str], Any] = fetch_json,
    ) -> TokenVerifier:
        region = pool_id.partition("_")[0]
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
        return cls(issuer, client_id, JwksCache(jwks_url or f"{issuer}/.well-known/jwks.json", fetch))

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is a live ID token from our pool for our client; else
        :class:`AuthError` (401) saying which check failed."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        try:
            header = json.loads(_b64decode(token.split(".")[0]))
            kid = header.get("kid") if isinstance(header, dict) else None
        except (ValueError, IndexError):
            raise AuthError("the session is not a JSON web token: sign in again", 401) from None
        try:
            # RS256 only: Cognito signs with it, and naming it shuts out "alg: none" and HS256
            # tokens keyed with the public key.
            decoded = jwt.decode(token, KeySet.import_key_set(self.keys.key_set(kid)), algorithms=["RS256"])  # type: ignore[arg-type]
        except (JoseError, ValueError) as exc:
            raise AuthError(
                f"the session's signature does not verify ({type(exc).__name__}): sign in again", 401
            ) from None
        claims = dict(decoded.claims)
        now = self.clock()
        if claims.get("iss") != self.issuer:
            raise AuthError(
                f"the session was issued by {str(claims.get('iss'))[:120]!r}, not this user pool", 401
            )
        if claims.get("aud") != self.client_id:
            raise AuthError("the session was issued to another app client of the pool", 401)
        if claims.get("token_use") != "id":
            raise AuthError(f"the session holds an {claims.get('token_use')!r} token, not an ID token", 401)
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or now > exp + LEEWAY_S:
            raise AuthError("the session has expired: sign in again", 401)
        if isinstance(iat, int | float) and iat > now + LEEWAY_S:
            raise AuthError("the session was issued in the future: check the clock, then sign in again", 401)
        return claims


def principal(claims: Mapping[str, Any]) -> Principal:
    """The signed-in reviewer: the verified e-mail address and the user pool groups.

    A federated user's e-mail comes from the company IdP through the pool's attribute mapping;
    a pool user's must be verified (Cognito marks ``email_verified``), or anyone could sign up
    under someone else's address."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise AuthError(
            "the session names no e-mail address: the app client must read the email attribute", 403
        )
    if claims.get("email_verified") in (False, "false"):
        raise AuthError(f"{email} is not verified in the user pool", 403)
    groups = claims.get("cognito:groups") or []
    return Principal(
        identity=email.strip().lower(),
        source="cognito",
        groups=frozenset(g for g in groups if isinstance(g, str)),
    )


# -- the session cookie and CSRF --------------------------------------------------------------


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(key: bytes, token: str) -> str:
    """The form token for this session: it changes with the session and cannot be made
    without the signing key, so a page elsewhere can neither read nor forge it."""
    mac = hmac.new(key, f"panelbrain-csrf\n{session_id(token)}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check_csrf(key: bytes, token: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(csrf_token(key, token).encode(), given.encode()):
        raise AuthError(
            "the form's CSRF token does not match your session: reload the page and try again", 403
        )


def cookies(header: str | None) -> dict[str, str]:
    """The request's cookies by name; a malformed Cookie header counts as none."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header or "")
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def set_cookie(name: str, value: str, *, secure: bool, max_age: int, path: str = "/") -> str:
    """A Set-Cookie value: HttpOnly (no script reads it), SameSite=Lax (a cross-site POST
    never carries it; following an e-mail link, a GET, still does), Secure on https."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max(0, max_age)}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie(name: str, *, secure: bool, path: str = "/") -> str:
    return set_cookie(name, "", secure=secure, max_age=0, path=path)


# -- managed login: the authorization code grant with PKCE -------------------------------------


@dataclass(frozen=True)
class SignIn:
    """One sign-in under way: ``state`` ties the callback to this browser, ``verifier`` is the
    PKCE secret whose hash went to the authorize endpoint."""

    state: str
    verifier: str

    @classmethod
    def new(cls) -> SignIn:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def cookie_value(self) -> str:
        return f"{self.state}.{self.verifier}"

    @classmethod
    def from_cookie(cls, value: str | None) -> SignIn | None:
        state, _, verifier = (value or "").partition(".")
        return cls(state, verifier) if state and verifier else None


def authorize_url(domain: str, client_id: str, redirect_uri: str, sign_in: SignIn) -> str:
    """Managed login's authorize endpoint, for the code grant with PKCE (S256):
    https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html
    https://docs.aws.amazon.com/cognito/latest/developerguide/using-pkce-in-authorization-code.html"""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": sign_in.state,
            "code_challenge_method": "S256",
            "code_challenge": sign_in.challenge,
        }
    )
    return f"{domain.rstrip('/')}/oauth2/authorize?{query}"


def exchange_code(
    domain: str,
    client_id: str,
    code: str,
    redirect_uri: str,
    sign_in: SignIn,
    *,
    fetch: Callable[..., Any] = fetch_json,
) -> str:
    """The ID token for an authorization code, from the token endpoint (a public client: no
    secret, the PKCE verifier proves the code is ours):
    https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html"""
    body = urlencode(
        {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": sign_in.verifier,
        }
    ).encode()
    try:
        answer = fetch(
            f"{domain.rstrip('/')}/oauth2/token",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    except OSError as exc:
        raise AuthError(
            f"the user pool's token endpoint refused the sign-in ({exc}): sign in again", 401
        ) from None
    token = answer.get("id_token") if isinstance(answer, dict) else None
    if not isinstance(token, str):
        raise AuthError("the user pool's token endpoint returned no ID token: sign in again", 401)
    return token


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
