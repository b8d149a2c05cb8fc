"""``prefpaint serve`` fuzzed from its own OpenAPI schema (issue 23): schemathesis generates requests for every
operation of the live server's ``/openapi.json`` (a bounded number each, on loopback); no answer may be a 5xx,
every answer must be one the schema declares (status, content type, body), and the server is healthy after."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from _serve_helpers import live_server, served_inpainter
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def base_url(tiny_pipeline_dir, tmp_path_factory):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk.testing import save_tiny_reward_model

    inp, rm = served_inpainter(tiny_pipeline_dir, save_tiny_reward_model(tmp_path_factory.mktemp("schema-rm") / "rm"))
    with live_server(create_app(inp, rm, default_steps=1, max_upload_mb=1, max_queue=4)) as base:
        yield base
        assert requests.get(base + "/health", timeout=10).json()["status"] == "ok"  # healthy afterwards


@pytest.fixture(scope="module")
def api_schema(base_url):
    return schemathesis.openapi.from_url(base_url + "/openapi.json")


# Every operation of the schema (a test below checks the list is whole). schemathesis's own lazy-fixture
# parametrize does not run under pytest 9, so each operation's strategy is driven by hypothesis here.
OPERATIONS = [("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/images/edits"), ("POST", "/v1/inpaint"),
              ("POST", "/v1/score"), ("GET", "/v1/jobs/{job_id}"), ("DELETE", "/v1/jobs/{job_id}"),
              ("GET", "/v1/jobs/{job_id}/events")]


@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_and_every_answer_is_in_the_schema(api_schema, base_url, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def fuzz(case):
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=60)

    fuzz()


def test_the_fuzzed_operations_are_all_of_the_schemas(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


def test_the_schema_declares_every_body_and_its_errors(api_schema, base_url):
    doc = requests.get(base_url + "/openapi.json", timeout=10).json()
    edits = doc["paths"]["/v1/images/edits"]["post"]
    assert set(edits["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"400", "401", "413", "415", "422", "429"} <= set(edits["responses"])
    assert set(edits["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "multipart/form-data" in doc["paths"]["/v1/inpaint"]["post"]["requestBody"]["content"]
