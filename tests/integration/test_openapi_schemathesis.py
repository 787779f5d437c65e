"""schemathesis against kmipd's own OpenAPI document, on a real server over HTTPS.

Every operation in the document is called with generated requests (valid and invalid), with
a Manager credential: no answer may be a 5xx, and every answer must be declared in the
document (status code, content type, headers) and match its schema.
"""

from __future__ import annotations

import ssl

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as sc
from schemathesis.specs.openapi import checks as oc

from tests.support.server import KmipdServer

CHECKS = [
    sc.not_a_server_error,
    oc.status_code_conformance,
    oc.content_type_conformance,
    oc.response_headers_conformance,
    oc.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(shared_server: KmipdServer) -> schemathesis.BaseSchema:
    context = ssl.create_default_context(cafile=str(shared_server.ca))
    document = httpx.get(f"{shared_server.https_url}/openapi.json", verify=context).json()
    return schemathesis.openapi.from_dict(document)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_matches_the_document(
    case: schemathesis.Case, shared_server: KmipdServer
) -> None:
    headers = {"Authorization": f"Bearer {shared_server.admin_api_key}"}
    if case.path.startswith("/api/v2/"):
        instance = (shared_server.data_dir / "keyprotect-instance-id").read_text().strip()
        headers["Bluemix-Instance"] = instance
    case.call_and_validate(
        base_url=shared_server.https_url,
        headers=headers,
        checks=CHECKS,
        verify=str(shared_server.ca),
        timeout=10,
    )
