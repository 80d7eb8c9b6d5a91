"""Fuzzing the staff site's JSON API from its own OpenAPI document (R9, OWASP Top 10).

Every operation of ``/api/openapi.json`` (built from ``staff.ENDPOINTS``) gets schemathesis-
generated cases — valid ones and invalid ones (schemathesis 4's negative mode: wrong types,
missing and unknown fields, bodies that are no JSON, odd path parameters, garbage session
cookies and CSRF headers). Each case is sent four times: anonymously and with a session of the
admin, the doctor and the assistant — the same request per role, so access control is compared
case by case. Half of the cases carry real ids (patients, appointments of Dr. Müller, their
guests, the staff's usernames; also in the body's ``doctor`` and ``patient_id``), so that they
get past the look-ups into the handlers; undeclared query parameters (``?q=``, ``?date=``) are
fuzzed too, and some cases are cross-site (a foreign ``Origin``, no or a wrong CSRF token). Each
answer must hold:

- no 5xx (the device check's documented ``503 device_check_busy`` aside),
- every refusal is a 4xx JSON body in the documented error format
  (``{"error": "<code>", "message": "..."}``, ``ERROR_SCHEMA``),
- success only where the operation's ``x-access`` lets the role in, with a documented status and
  a body that matches the documented response schema,
- the security headers on every answer, and no ERROR record or traceback in the log.

The operations open to anyone are fuzzed on a box before onboarding and on a sealed one, too.

How the cases reach the box: schemathesis's ``case.call()`` is synchronous (requests), while
the box runs in the test's event loop behind aiohttp's test client. So each test is an async
hypothesis test — pytest-asyncio runs every example of an ``@given`` coroutine in the test's own
loop, where the box's fixtures live — that draws its case with ``st.data()`` from
``operation.as_strategy(...)`` (built once per operation) and sends it through the async client
itself (:func:`tests.fuzz.conftest.send`). Drawing inside the test lets the case be completed
with ids of data made for that very example, and hypothesis still shrinks a failing case and
reports the draws. (Collecting cases first with ``strategy.example()`` is discouraged by
hypothesis and loses shrinking; running ``case.call()`` in a thread against the loop would work
but adds a thread hop per request for nothing.)

State between examples: every request gets a new session (minted in the session store as a
login makes it, not by logging in: the login rate limit would answer 429 after ten examples)
and an empty cookie jar; the patients, appointments and guests are made anew after any request
that may have changed them, and the three staff members are restored (roles, names, removal)
before the next request. So a fuzzed logout, password change, cancellation, removal or
demotion cannot take later examples' ground away, and no operation is skipped. (A fuzzed
password change does persist; the sessions do not depend on passwords.)

Default run: ``SZ_FUZZ_EXAMPLES`` (12) derandomized examples per operation, each sent as every
role. Deep run: ``make fuzz`` (``SZ_FUZZ_PROFILE=deep``: 500 random examples each, widened rate
limits).
"""

from __future__ import annotations

from typing import Final

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import APIOperation

from appliance.practice.models import Role
from appliance.practice.onboarding import onboard
from appliance.web import staff
from appliance.web.api import openapi_document
from appliance.web.context import STAFF_SESSIONS
from appliance.web.sessions import STAFF_COOKIE, StaffSession
from tests.web.conftest import ADMIN_PASSWORD, PROFILE, Box

from .conftest import (
    EXTRA_QUERY,
    FOREIGN_ORIGIN,
    FUZZ,
    Ground,
    LogWatch,
    check_answer,
    draw_case,
    draw_real_ids,
    ids,
    new_session_id,
    operations_of,
    origin_of,
    origins,
    send,
    with_real_ids,
)

SCHEMA: Final = schemathesis.openapi.from_dict(
    openapi_document(staff.ENDPOINTS, title="Sprechzimmer – Praxis-API"))
OPERATIONS: Final = operations_of(SCHEMA)
PUBLIC_OPERATIONS: Final = [op for op in OPERATIONS if op.definition.raw["x-access"] == "public"]
#: role → (username, the roles that member has); anonymous has no session
ROLES: Final[dict[str, tuple[str, frozenset[str]] | None]] = {
    "anonymous": None,
    "admin": ("admin", frozenset({"admin"})),
    "doctor": ("dr.mueller", frozenset({"doctor"})),
    "assistant": ("mfa", frozenset({"assistant"})),
}


#: how a case tries a cross-site request (R9 A01, CSRF): mostly not at all
FORGERIES: Final = st.sampled_from(["none"] * 6 + ["foreign origin", "no token", "wrong token"])
#: 503 answers of a box before onboarding or sealed after a restart ("not now")
NOT_NOW: Final = frozenset({"vault_not_initialized", "vault_sealed"})


def allowed(access: str, role: str) -> bool:
    """Whether ``x-access`` ``access`` lets ``role`` in."""
    member = ROLES[role]
    if access == "public":
        return True
    if member is None:
        return False
    return access == "staff" or access in member[1]


def _mint_session(box: Box, username: str) -> tuple[str, str]:
    """A session of ``username`` as a login makes it: (cookie value, CSRF token)."""
    session = StaffSession(username=username)
    session_id = new_session_id()
    assert box.staff.app[STAFF_SESSIONS].restore(session_id, session, 0.0, 0.0)
    return session_id, session.csrf


def test_every_api_route_is_fuzzed() -> None:
    """R9: the fuzzed document has every operation of the staff API (nothing left out)."""
    documented = {(method.upper(), path) for path, item in
                  openapi_document(staff.ENDPOINTS, title="x")["paths"].items()
                  for method in item}
    assert {(op.method.upper(), op.path) for op in OPERATIONS} == documented
    assert len(OPERATIONS) == len(staff.ENDPOINTS)


@pytest.mark.parametrize("operation", OPERATIONS, ids=ids(OPERATIONS))
@FUZZ
@given(data=st.data())
async def test_staff_operation(practice: Box, ground: Ground, log_watch: LogWatch,
                               operation: APIOperation, data: st.DataObject) -> None:
    """R9 (A01 access control, A03 injection, A04/A05 error handling): each generated valid or
    invalid request, sent anonymously and as admin, doctor and assistant, never fails on the
    server, is refused in the documented error format, succeeds only for the roles the
    operation's ``x-access`` names, and logs no error."""
    case = draw_case(data, operation)
    real_ids = draw_real_ids(data, operation)
    forgery = data.draw(FORGERIES, label="forgery")
    extra = data.draw(EXTRA_QUERY, label="extra query") if case.method.upper() == "GET" else {}
    access = operation.definition.raw["x-access"]
    own_origin = origin_of(practice.staff)
    for role, member in ROLES.items():
        log_watch.mark()
        with_real_ids(case, real_ids, ground.known())
        headers: dict[str, str | None] = {
            "Origin": FOREIGN_ORIGIN if forgery == "foreign origin" else own_origin}
        cookies: dict[str, str] = {}
        if member is not None:  # a real session; the generated cookie and token are replaced
            session_id, csrf = _mint_session(practice, member[0])
            cookies[STAFF_COOKIE] = session_id
            headers["X-CSRF-Token"] = {"no token": None, "wrong token": "falsches-token"}.get(
                forgery, csrf)
        answer = await send(practice.staff, case, cookies=cookies, headers=headers,
                            extra_query=extra)
        check_answer(operation, answer, allowed=allowed(access, role), role=role)
        log_watch.assert_clean(f"as {role}: {answer.describe()}")
        if answer.status < 300 and case.method.upper() != "GET":
            ground.changed()


@pytest.fixture(params=["new", "sealed"])
def unready_box(request: pytest.FixtureRequest, box: Box) -> Box:
    """A box before onboarding, or one set up and then sealed (as after a restart)."""
    if request.param == "sealed":
        onboard(box.services, profile=PROFILE, username="admin", display_name="Anna Admin",
                password=ADMIN_PASSWORD, roles={Role.ADMIN})
        box.services.vault.seal()
    return box


@pytest.mark.parametrize("operation", PUBLIC_OPERATIONS, ids=ids(PUBLIC_OPERATIONS))
@FUZZ
@given(data=st.data())
async def test_public_operation_before_onboarding_and_while_sealed(
        unready_box: Box, log_watch: LogWatch, operation: APIOperation,
        data: st.DataObject) -> None:
    """R9: on a box not yet set up (no vault) and on one sealed after a restart, the operations
    open to anyone — status, onboarding, login, language, KV regions — hold the same rules for
    generated requests (the first valid onboarding sets a new box up; later ones are refused).
    Such a box may answer ``503`` with ``vault_not_initialized`` or ``vault_sealed``: its
    documented "not now", in the error format; nothing else of 5xx."""
    box = unready_box
    log_watch.mark()
    case = draw_case(data, operation)
    origin = data.draw(origins(box.staff), label="Origin")
    answer = await send(box.staff, case, headers={"Origin": origin})
    check_answer(operation, answer, allowed=True, not_now=NOT_NOW)
    log_watch.assert_clean(answer.describe())
