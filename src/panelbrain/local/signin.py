"""Reviewer sign-in on ``panelbrain serve``: the template's user pool on the emulator.

The pool, its app client and its reviewers group are created from ``template.yaml``'s
``AWS::Cognito::*`` resources on moto's cognito-idp; each e-mail address given to
``--reviewers`` becomes a user in the reviewers group, with a generated password printed for
the operator (and kept in a file only they can read). The local ``/login`` page signs in with
InitiateAuth (USER_PASSWORD_AUTH, allowed on the local client only: managed login takes its
place when deployed), and the ID token it returns is the session: the review function verifies
it exactly as deployed (signature against the pool's keys, issuer, audience, token_use, expiry).
"""

from __future__ import annotations

import json
import secrets
import string
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panelbrain.errors import PanelbrainError
from panelbrain.review import auth
from panelbrain.review.models import Principal

if TYPE_CHECKING:
    from panelbrain.local.engine import LocalEngine

LOGIN_PATH = "/login"


class LocalSignInError(PanelbrainError):
    """The template's user pool could not be set up on the emulator."""


def _password() -> str:
    # Meets the template's policy (14+ characters, upper, lower, digit) whatever is drawn.
    alphabet = string.ascii_letters + string.digits
    return "Pb-" + "".join(secrets.choice(alphabet) for _ in range(16)) + "a1Z"


class LocalSignIn:
    """The emulator's reviewer pool: users for ``reviewers``, sign-in, token verification."""

    def __init__(self, engine: LocalEngine, reviewers: list[str], *, state_dir: Path | None = None) -> None:
        template = engine.template
        pools = template.of_type("AWS::Cognito::UserPool")
        if len(pools) != 1:
            raise LocalSignInError(
                f"template.yaml must declare one AWS::Cognito::UserPool, found {len(pools)}"
            )
        (pool_props,) = [template.resolve(p.get("Properties", {})) for p in pools.values()]
        self.client: Any = engine.clients["cognito-idp"]  # the emulator's, as every engine client
        self.pool_id: str = self.client.create_user_pool(
            PoolName=str(pool_props.get("UserPoolName", "reviewers")),
            UsernameAttributes=pool_props.get("UsernameAttributes", ["email"]),
            AutoVerifiedAttributes=pool_props.get("AutoVerifiedAttributes", ["email"]),
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        )["UserPool"]["Id"]
        (client_props,) = [
            c.get("Properties", {}) for c in template.of_type("AWS::Cognito::UserPoolClient").values()
        ]
        flows = [f for f in client_props.get("ExplicitAuthFlows", []) if isinstance(f, str)]
        self.client_id: str = self.client.create_user_pool_client(
            UserPoolId=self.pool_id,
            ClientName=str(client_props.get("ClientName", "reviewer-page")),
            GenerateSecret=False,
            # The local /login page posts a password: the one flow added to the template's.
            ExplicitAuthFlows=sorted({*flows, "ALLOW_USER_PASSWORD_AUTH"}),
        )["UserPoolClient"]["ClientId"]
        groups = [
            str(g["Properties"]["GroupName"])
            for g in template.of_type("AWS::Cognito::UserPoolGroup").values()
        ]
        for group in groups:
            self.client.create_group(UserPoolId=self.pool_id, GroupName=group)
        self.passwords: dict[str, str] = {}
        for address in dict.fromkeys(
            r.strip().lower() for r in reviewers if "@" in r and not r.startswith("slack:")
        ):
            self.add_user(address, _password(), groups=groups)
        # The pool's public keys, where the review function's verifier reads them: moto signs
        # every pool's tokens with one key pair it ships, and serves no HTTPS URL offline.
        self._dir = state_dir or Path(tempfile.mkdtemp(prefix="panelbrain-signin-"))
        jwks = self._dir / "jwks.json"
        jwks.write_text(json.dumps(_moto_public_keys()), encoding="utf-8")
        self.jwks_url = jwks.as_uri()
        self.credentials_file = self._dir / "reviewers.json"
        self.credentials_file.touch(mode=0o600)
        self.credentials_file.write_text(json.dumps(self.passwords, indent=2), encoding="utf-8")
        self.verifier = auth.TokenVerifier.for_pool(self.pool_id, self.client_id, jwks_url=self.jwks_url)

    def add_user(self, address: str, password: str, *, groups: list[str]) -> None:
        try:
            self.client.admin_create_user(
                UserPoolId=self.pool_id,
                Username=address,
                UserAttributes=[
                    {"Name": "email", "Value": address},
                    {"Name": "email_verified", "Value": "true"},
                ],
                MessageAction="SUPPRESS",
            )
        except self.client.exceptions.InvalidParameterException as exc:
            # The pool signs reviewers in by e-mail address (UsernameAttributes: email).
            raise LocalSignInError(
                f"reviewer {address!r} is not an e-mail address the user pool accepts "
                f"({exc.response['Error']['Message']}); name reviewers as name@example.org"
            ) from None
        self.client.admin_set_user_password(
            UserPoolId=self.pool_id, Username=address, Password=password, Permanent=True
        )
        for group in groups:
            self.client.admin_add_user_to_group(UserPoolId=self.pool_id, Username=address, GroupName=group)
        self.passwords[address] = password

    def stage_variables(self) -> dict[str, str]:
        """What the deployed stage holds (template.yaml, QueryApi Variables), for this emulator."""
        return {
            "reviewerPoolId": self.pool_id,
            "reviewerClientId": self.client_id,
            "reviewerLocalLogin": LOGIN_PATH,
        }

    def sign_in(self, username: str, password: str) -> str:
        """The ID token for a reviewer's password; :class:`auth.AuthError` (401) if refused."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username.strip().lower(), "PASSWORD": password},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NotAuthorizedException", "UserNotFoundException"):
                raise auth.AuthError("the e-mail address or password is wrong", 401) from None
            raise
        token = (answer.get("AuthenticationResult") or {}).get("IdToken")
        if not isinstance(token, str):
            raise auth.AuthError(f"the user pool asked for {answer.get('ChallengeName')!r} first", 401)
        return token

    def cookie(self, who: str) -> str:
        """The Cookie header of a browser signed in as ``who`` (a --reviewers address)."""
        return f"{auth.SESSION_COOKIE}={self.sign_in(who, self.passwords[who])}"

    def principal(self, token: str) -> Principal:
        """Who a session token proves, verified as the review function verifies it."""
        return auth.principal(self.verifier.verify(token))

    def banner(self) -> str:
        """What the operator is told at start: where to sign in, and with what."""
        if not self.passwords:
            return "reviewer sign-in: no e-mail address in --reviewers, so no one can sign in to /reviews\n"
        lines = [f"reviewer sign-in at {LOGIN_PATH} (passwords also in {self.credentials_file}):"]
        lines += [f"  {address}  {password}" for address, password in self.passwords.items()]
        return "\n".join(lines) + "\n"


def _moto_public_keys() -> dict[str, Any]:
    from moto.utilities.utils import load_resource

    keys: dict[str, Any] = load_resource("cognitoidp/resources/jwks-public.json")
    return keys


def bearer_or_cookie(headers: dict[str, str]) -> str | None:
    """The session token a local request carries: ``Authorization: Bearer`` (curl) or the cookie."""
    lower = {k.lower(): v for k, v in headers.items()}
    scheme, _, token = lower.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return auth.cookies(lower.get("cookie")).get(auth.SESSION_COOKIE)


__all__ = ["LOGIN_PATH", "LocalSignIn", "LocalSignInError", "bearer_or_cookie"]
