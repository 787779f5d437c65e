"""Objects that hold key material or credentials leave them out of their repr, so a log line,
a traceback or an assertion message that shows the object does not show the secret."""

from __future__ import annotations

import base64

from kmipd.api.keyprotect import Key, KeyVersionRef
from kmipd.api.routes.apikeys import NewApiKey
from kmipd.api.routes.iam import TokenResponse
from kmipd.api.routes.kp_actions import UnwrapResult, WrapResult
from kmipd.keys.keyring import Unwrapped, Wrapped
from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol._generated import ObjectType, State
from kmipd.service.repository import ManagedObject

SECRET = b"\x8f canary key material \x01"
TEXT = base64.b64encode(SECRET).decode()


def _clean(obj: object) -> None:
    shown = repr(obj) + str(obj)
    for form in (repr(SECRET), SECRET.hex(), TEXT, "canary"):
        assert form not in shown, shown


def test_keyring_results() -> None:
    _clean(Wrapped("ct", "v1", SECRET))
    _clean(Unwrapped(SECRET, "v1", None, "v1"))


def test_managed_object_body() -> None:
    _clean(
        ManagedObject(
            "uid", "default", ObjectType.SYMMETRIC_KEY, State.ACTIVE, AttributeSet(), 0, body=SECRET
        )
    )


def test_api_responses() -> None:
    version = KeyVersionRef(id="v1")
    _clean(WrapResult(ciphertext="ct", keyVersion=version, plaintext=TEXT))
    _clean(UnwrapResult(plaintext=TEXT, keyVersion=version))
    _clean(
        TokenResponse(
            access_token=TEXT, refresh_token=TEXT, token_type="Bearer", expires_in=1, expiration=1
        )
    )
    _clean(
        NewApiKey(
            id="i",
            service_id="s",
            role="Reader",
            description="",
            created=0,
            revoked=None,
            api_key=TEXT,
        )
    )
    _clean(
        Key(
            id="k",
            name="n",
            aliases=[],
            tags=[],
            state=1,
            extractable=True,
            crn="c",
            imported=False,
            creationDate="",
            createdBy="",
            lastUpdateDate="",
            keyVersion=version,
            dualAuthDelete={},
            deleted=False,
            payload=TEXT,
        )
    )


def test_requests_and_issued_credentials() -> None:
    from kmipd.api.routes.kp_actions import ActionBody, RotateBody, WrapBody
    from kmipd.api.routes.kp_keys import KeyCreateResource
    from kmipd.service.admin import IssuedCredentials

    _clean(WrapBody(plaintext=TEXT))
    _clean(RotateBody(payload=TEXT))
    _clean(ActionBody(plaintext=TEXT, payload=TEXT))
    _clean(KeyCreateResource(name="nn", payload=TEXT))
    _clean(IssuedCredentials(None, TEXT))  # type: ignore[arg-type]
