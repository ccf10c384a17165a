"""Schemathesis generates requests from /api/v1/openapi.json and checks the app's answers
against it: no 5xx, documented status codes and content types, responses that match their
schemas. In process (WSGI) on a real SQLite file, with a manager's token.

The schema is loaded when this module is imported (schemathesis' lazy fixture loader does
not work with pytest 9.2), so the app lives in a temporary directory removed at exit."""

from __future__ import annotations

import atexit
import shutil
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from shelter.app import create_app
from shelter.domain.accounts import create_token

_data = tempfile.mkdtemp(prefix="shelter-schema-")
atexit.register(shutil.rmtree, _data, ignore_errors=True)
app = create_app(_data, test_config={"SHELTER_ID": "E2710000005555"})
TOKEN = create_token(app.extensions["shelter"].store, "manager")
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case):
    # Every check but "schema-valid data is accepted": some rules cannot be said in JSON
    # Schema (a birth date not in the future, no control characters, a card code whose
    # signature is right), and the API refuses those with 422 and a reason, as it should.
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                           excluded_checks=[positive_data_acceptance])
