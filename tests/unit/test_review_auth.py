"""Reviewer sign-in: ID token verification, the session's CSRF token, cookies, PKCE, and the
review function's sign-in routes, with a key pair made here (no network, no emulator)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from panelbrain.review import auth

POOL = "us-east-1_TestPool1"
CLIENT = "testclient0123456789"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}"
KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1"}, private=True)
OTHER = RSAKey.generate_key(2048, parameters={"kid": "key-1"}, private=True)  # same kid, not ours


def jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def token(key: Any = KEY, alg: str = "RS256", kid: str = "key-1", **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "token_use": "id",
        "sub": "00000000-0000-0000-0000-000000000001",
        "email": "Ana@Example.org",
        "email_verified": True,
        "cognito:groups": ["reviewers"],
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": kid}, claims, key, algorithms=[alg])


def verifier(fetched: list[str] | None = None, keys: dict[str, Any] | None = None) -> auth.TokenVerifier:
    def fetch(url: str) -> dict[str, Any]:
        if fetched is not None:
            fetched.append(url)
        return keys or jwks(KEY)

    return auth.TokenVerifier.for_pool(POOL, CLIENT, fetch=fetch)


def test_a_pool_id_token_for_our_client_proves_its_verified_email_and_groups() -> None:
    fetched: list[str] = []
    claims = verifier(fetched).verify(token())
    principal = auth.principal(claims)
    assert (principal.identity, principal.source, principal.groups) == (
        "ana@example.org",
        "cognito",
        frozenset({"reviewers"}),
    )
    # The keys come from the pool's own JWKS URL, as Cognito publishes them.
    assert fetched == [f"{ISSUER}/.well-known/jwks.json"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"}, "not this user pool"),
        ({"aud": "anotherclient"}, "another app client"),
        ({"token_use": "access"}, "not an ID token"),
        ({"exp": None}, "expired"),
        ({"iat": int(time.time()) + 3600}, "in the future"),
    ],
)
def test_a_token_failing_any_claim_check_is_refused(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(auth.AuthError, match=why) as refused:
        verifier().verify(token(**changes))
    assert refused.value.status == 401


def test_a_token_signed_by_another_key_or_algorithm_is_refused() -> None:
    forgeries = [
        token(OTHER),  # the right kid, the wrong key
        # HS256 "signed" with the public key's bytes: the classic confusion; RS256 only.
        token(OctKey.import_key(json.dumps(KEY.as_dict(private=False)).encode()), alg="HS256"),
    ]
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"key-1"}').rstrip(b"=").decode()
    body = token().split(".")[1]
    forgeries.append(f"{header}.{body}.")  # alg none, no signature
    forgeries.append("not a token")
    for forged in forgeries:
        with pytest.raises(auth.AuthError) as refused:
            verifier().verify(forged)
        assert refused.value.status == 401


def test_an_unknown_key_id_fetches_the_keys_again_but_not_on_every_request() -> None:
    rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2"}, private=True)
    fetched: list[str] = []
    served = [jwks(KEY)]

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return served[-1]

    check = auth.TokenVerifier.for_pool(POOL, CLIENT, fetch=fetch)
    check.verify(token())
    served.append(jwks(KEY, rotated))
    # A kid we do not hold: the pool may have rotated its keys, so they are fetched once more...
    with pytest.raises(auth.AuthError):
        check.verify(token(rotated, kid="key-2"))
    assert len(fetched) == 1  # ...but not within JWKS_REFETCH_S of the last fetch
    check.keys._fetched_at -= auth.JWKS_REFETCH_S
    check.verify(token(rotated, kid="key-2"))
    assert len(fetched) == 2


@pytest.mark.parametrize(
    ("claims", "why"),
    [({"email": None}, "names no e-mail"), ({"email_verified": "false"}, "not verified")],
)
def test_a_session_without_a_verified_email_proves_no_reviewer(claims: dict[str, Any], why: str) -> None:
    with pytest.raises(auth.AuthError, match=why) as refused:
        auth.principal(verifier().verify(token(**claims)))
    assert refused.value.status == 403


def test_the_csrf_token_is_bound_to_its_session_and_key() -> None:
    key = b"k" * 32
    mine, theirs = token(), token(sub="someone-else")
    auth.check_csrf(key, mine, auth.csrf_token(key, mine))
    for given in (None, "", auth.csrf_token(key, theirs), auth.csrf_token(b"x" * 32, mine)):
        with pytest.raises(auth.AuthError, match="CSRF") as refused:
            auth.check_csrf(key, mine, given)
        assert refused.value.status == 403


def test_session_cookies_are_http_only_lax_and_secure_on_https() -> None:
    cookie = auth.set_cookie(auth.SESSION_COOKIE, "t", secure=True, max_age=60)
    assert cookie == "pb_session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
    assert "Secure" not in auth.set_cookie(auth.SESSION_COOKIE, "t", secure=False, max_age=60)
    assert auth.clear_cookie(auth.SESSION_COOKIE, secure=True).startswith("pb_session=; Path=/; Max-Age=0")
    assert auth.cookies("a=1; pb_session=tok.en.x") == {"a": "1", "pb_session": "tok.en.x"}
    assert auth.cookies('bad="unterminated') == {}


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636, appendix B.
    sign_in = auth.SignIn("state", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert sign_in.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert auth.SignIn.from_cookie(sign_in.cookie_value()) == sign_in
    assert auth.SignIn.from_cookie("no-dot") is None
    url = auth.authorize_url("https://d.auth.us-east-1.amazoncognito.com/", CLIENT, "https://cb", sign_in)
    assert url.startswith("https://d.auth.us-east-1.amazoncognito.com/oauth2/authorize?response_type=code&")
    assert "code_challenge_method=S256" in url and f"code_challenge={sign_in.challenge}" in url


def test_the_code_is_redeemed_with_the_verifier_for_an_id_token() -> None:
    sent: dict[str, Any] = {}

    def fetch(url: str, *, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        sent.update(url=url, data=data.decode(), headers=headers)
        return {"id_token": "the-id-token", "access_token": "x", "token_type": "Bearer"}

    sign_in = auth.SignIn("s", "v" * 43)
    got = auth.exchange_code("https://d.example", CLIENT, "the-code", "https://cb", sign_in, fetch=fetch)
    assert got == "the-id-token"
    assert sent["url"] == "https://d.example/oauth2/token"
    assert sent["data"] == (
        f"grant_type=authorization_code&client_id={CLIENT}&code=the-code"
        f"&redirect_uri=https%3A%2F%2Fcb&code_verifier={'v' * 43}"
    )
    with pytest.raises(auth.AuthError, match="no ID token"):
        auth.exchange_code("https://d.example", CLIENT, "c", "https://cb", sign_in, fetch=lambda *a, **k: {})


def test_keys_are_fetched_over_https_or_from_a_local_file_only(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(KEY)))
    assert auth.fetch_json(keys.as_uri()) == jwks(KEY)
    with pytest.raises(auth.AuthError, match="only https"):
        auth.fetch_json("http://169.254.169.254/latest/meta-data")


# -- the review function's sign-in routes -------------------------------------------------------

STAGE = {
    "reviewerPoolId": POOL,
    "reviewerClientId": CLIENT,
    "reviewerLoginDomain": "https://panelbrain-x.auth.us-east-1.amazoncognito.com",
    "reviewerCallbackUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/dev/auth/callback",
}


def event(path: str, *, query: dict[str, str] | None = None, cookie: str | None = None) -> dict[str, Any]:
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "https"}
    if cookie:
        headers["Cookie"] = cookie
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None,
        "stageVariables": STAGE,
        "requestContext": {"resourcePath": path, "httpMethod": "GET", "stage": "dev", "requestId": "r"},
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def review_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from panelbrain.functions import review_api

    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(KEY)))
    monkeypatch.setenv("REVIEWER_JWKS_URL", keys.as_uri())
    review_api._verifier.cache_clear()
    yield review_api
    review_api._verifier.cache_clear()


def set_cookies(response: dict[str, Any]) -> list[str]:
    return list((response.get("multiValueHeaders") or {}).get("Set-Cookie", []))


def test_the_reviewer_page_sends_a_browser_without_a_session_to_managed_login(review_api: Any) -> None:
    response = review_api.handler(event("/reviews"), None)
    assert response["statusCode"] == 302
    location = response["multiValueHeaders"]["Location"][0]
    assert location.startswith(f"{STAGE['reviewerLoginDomain']}/oauth2/authorize?response_type=code")
    (cookie,) = set_cookies(response)
    state, _, verifier_ = cookie.split(";")[0].removeprefix("pb_signin=").partition(".")
    assert f"state={state}" in location and auth.SignIn(state, verifier_).challenge in location
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie


def test_the_callback_sets_the_session_only_for_the_sign_in_this_browser_started(
    review_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    redeemed: list[tuple[str, str]] = []

    def exchange(domain: str, client_id: str, code: str, redirect_uri: str, sign_in: auth.SignIn) -> str:
        redeemed.append((code, sign_in.verifier))
        return token()

    monkeypatch.setattr(auth, "exchange_code", exchange)
    started = "pb_signin=the-state.the-verifier"
    for query, cookie in (
        ({"code": "c", "state": "the-state"}, None),  # no sign-in started here
        ({"code": "c", "state": "another-state"}, started),  # someone else's sign-in
        ({"state": "the-state"}, started),  # no code
    ):
        response = review_api.handler(event("/auth/callback", query=query, cookie=cookie), None)
        assert response["statusCode"] == 401, (query, cookie)
        assert not any(c.startswith("pb_session=") for c in set_cookies(response))
    assert redeemed == []
    response = review_api.handler(
        event("/auth/callback", query={"code": "c", "state": "the-state"}, cookie=started), None
    )
    assert response["statusCode"] == 303
    assert response["multiValueHeaders"]["Location"] == ["../reviews"]
    assert redeemed == [("c", "the-verifier")]
    session, cleared = set_cookies(response)
    assert session.startswith(f"pb_session={token().split('.')[0]}")
    assert all(flag in session for flag in ("HttpOnly", "Secure", "SameSite=Lax"))
    assert cleared.startswith("pb_signin=;") and "Max-Age=0" in cleared
