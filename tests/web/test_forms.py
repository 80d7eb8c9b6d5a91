"""The published request schemas are what the box enforces (issue 10: they were two things).

Every operation with a body, on both sites: schemathesis draws bodies from the OpenAPI document,
valid ones and invalid ones (wrong types, missing and unknown fields, out-of-range values). The
document's own schema, checked by ``jsonschema`` with formats, is the oracle: a body it accepts
must get past the box's check (``schema.decode``), and a body it refuses must be refused there
too, as an ``InvalidInput`` naming a field.
"""

from __future__ import annotations

from typing import Any, Final

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from appliance.errors import InvalidInput
from appliance.web import device_check, public, staff
from appliance.web.api import Endpoint, openapi_document
from appliance.web.schema import decode, explain

ENDPOINTS: Final[tuple[Endpoint, ...]] = (*staff.ENDPOINTS, *public.ENDPOINTS,
                                          *device_check.PUBLIC_ENDPOINTS)
WITH_BODY: Final = [ep for ep in ENDPOINTS if ep.body is not None]
DOCUMENT: Final = openapi_document(ENDPOINTS, title="alle Formulare")
SCHEMA: Final = schemathesis.openapi.from_dict(DOCUMENT)
FORMATS: Final = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _operation(endpoint: Endpoint) -> Any:
    return SCHEMA[endpoint.path][endpoint.method.upper()]


def _published(endpoint: Endpoint) -> jsonschema.Draft202012Validator:
    operation = DOCUMENT["paths"][endpoint.path][endpoint.method.lower()]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator(body_schema, format_checker=FORMATS)


def test_every_form_is_covered() -> None:
    """The forms tested here are all the bodies the two sites read."""
    assert len(WITH_BODY) >= 20
    assert {ep.body for ep in WITH_BODY} >= {staff.session.LoginForm, public.CheckIn,
                                            device_check.Offer}


@pytest.mark.parametrize("endpoint", WITH_BODY, ids=lambda ep: f"{ep.method} {ep.path}")
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_document_is_the_check(endpoint: Endpoint, data: st.DataObject) -> None:
    """R9 (OWASP A04): for bodies drawn from the document, valid and invalid, the box's check
    agrees with the published schema: accepted exactly when the schema accepts."""
    operation = _operation(endpoint)
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    case = data.draw(operation.as_strategy(mode))
    body = case.body
    if isinstance(body, NotSet):
        return
    published_ok = _published(endpoint).is_valid(body)
    try:
        decode(body, endpoint.body)
    except InvalidInput as refused:
        assert not published_ok, f"the document allows it, the box refuses: {body!r} " \
                                 f"({refused.params})"
        assert refused.params["field"] and refused.params["detail"]
    else:
        assert published_ok, f"the document forbids it, the box accepts: {body!r}"


@pytest.mark.parametrize(("message", "field", "detail"), [
    ("Object missing required field `password`", "password", "fehlt"),
    ("Object missing required field `method` - at `$.consent`", "consent.method", "fehlt"),
    ("Object contains unknown field `diagnosis`", "diagnosis", "unbekanntes Feld"),
    ("Expected `str` of length <= 200 - at `$.full_name`", "full_name",
     "zu lang (höchstens 200 Zeichen)"),
    ("Expected `str` matching regex '\\\\S' - at `$.code`", "code", "fehlt"),
    ("Expected `int` >= 5 - at `$.duration_minutes`", "duration_minutes",
     "außerhalb des erlaubten Bereichs"),
    ("Expected `str`, got `int` - at `$.public_urls[1]`", "public_urls[1]",
     "falscher Typ, erwartet: Text"),
    ("Expected `object`, got `array`", "body", "falscher Typ, erwartet: Objekt"),
    ("Invalid RFC3339 encoded date - at `$.given_on`", "given_on", "kein gültiges Datum"),
])
def test_refusals_name_the_field_in_german(message: str, field: str, detail: str) -> None:
    """A body that does not fit is refused with the field and what is wrong, in German."""
    assert explain(message) == (field, detail)
