"""Schemathesis against the live server's own OpenAPI document: whatever it sends, built
from the schema, the server answers without a 5xx.

Driven through Hypothesis directly (schemathesis' pytest plugin does not load under
pytest 9): one property per operation, all with the admin key, which reaches every route.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Server


def test_no_request_gets_a_server_error(server: Server, levitus: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.env.admin_key()}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=60)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} "
                    f"-> {response.status_code}: {response.text[:300]}"
                )

        call()
    assert failures == []
