"""Fuzzing the public (patient) site's API: the patient's and guests' link (R9, OWASP Top 10).

The public site has no OpenAPI document of its own on the wire; this one is built the same way
as the staff site's (``openapi_document``) from ``public.ENDPOINTS`` and the patient's device
check (``device_check.PUBLIC_ENDPOINTS``): ``/v/{token}/info``, ``code``, ``check-in``,
``state``, ``signaling``, ``leave``, ``events``, ``device-check``. The WebSocket
``/v/{token}/signal`` is fuzzed in ``test_signaling.py``.

Every generated case (schemathesis 4, valid and invalid) is sent four times: anonymously, and
with a verified session (the right access code was entered) of the patient of a scheduled
appointment, of a patient in the waiting room and of a guest. A third of the cases go to the
role's own link, a third to one of the four real ones (both patients', both guests'), the rest
to the generated token. Each answer must hold:

- no 5xx; every refusal a 4xx JSON body in the documented error format,
- success without a session only for ``info`` and ``code``, and with a session only on the
  session's own link (a session of one link opens no other: R1, R9 A01),
- success with a documented status and a body matching the documented schema,
- the security headers, and no ERROR record or traceback in the log.

How the cases reach the box, and how state is kept apart between examples, is explained in
``test_staff_api.py``: async hypothesis tests with ``st.data()``, sent through the aiohttp test
client; sessions are minted per example in the session store (the code limit would answer 429
after ten codes), and the appointments are made anew after an example that may have changed
them (a check-in, a leave, a wrong code that counts towards the lock). Rate limits stay real in
the default profile (``429 rate_limited`` is a valid refusal) and are widened when deep.
Every operation is fuzzed on a sealed box, too (after a restart, before a staff login), where
``503 practice_offline`` is the documented answer.

Default run: ``SZ_FUZZ_EXAMPLES`` (12) derandomized examples per operation. Deep run:
``make fuzz`` (``SZ_FUZZ_PROFILE=deep``: 500 random examples each).
"""

from __future__ import annotations

from typing import Any, Final

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import APIOperation

from appliance.web import device_check, public
from appliance.web.api import openapi_document
from appliance.web.context import PATIENT_SESSIONS
from appliance.web.sessions import PATIENT_COOKIE, PatientSession
from tests.web.conftest import Box

from .conftest import (
    FUZZ,
    Ground,
    Known,
    LogWatch,
    check_answer,
    draw_case,
    ids,
    new_session_id,
    operations_of,
    origin_of,
    origins,
    send,
)

ENDPOINTS: Final = (*public.ENDPOINTS, *device_check.PUBLIC_ENDPOINTS)
SCHEMA: Final = schemathesis.openapi.from_dict(
    openapi_document(ENDPOINTS, title="Sprechzimmer – Patientenseite"))
OPERATIONS: Final = operations_of(SCHEMA)
#: what a link shows before its code was entered
OPEN_PATHS: Final = frozenset({"/v/{token}/info", "/v/{token}/code"})
ROLES: Final = ("anonymous", "patient", "waiting", "guest")
#: which link a case goes to: the role's own (anonymous: a real patient link), one of the four
#: real ones (patients' and guests'), or the generated token
LINKS: Final = st.sampled_from(["own", "own", "own", 0, 1, 2, 3, "generated", "generated"])
#: 503 answers of a sealed box ("not now": the practice is not online yet)
OFFLINE: Final = frozenset({"practice_offline", "vault_sealed"})
#: refusals that still changed the appointment (a wrong code counts towards the lock)
CHANGING_ERRORS: Final = frozenset({"wrong_access_code", "link_locked"})


def _session_of(known: Known, role: str) -> PatientSession | None:
    """The verified session of ``role`` on the current data (None: anonymous)."""
    if role == "patient":
        appointment = known.scheduled
        return PatientSession(appointment_id=appointment.id, token=appointment.link_token,
                              code=appointment.access_code)
    if role == "waiting":
        appointment = known.waiting
        return PatientSession(appointment_id=appointment.id, token=appointment.link_token,
                              code=appointment.access_code)
    if role == "guest":
        guest = known.waiting.guests[0]
        return PatientSession(appointment_id=known.waiting.id, token=guest.link_token,
                              code=guest.access_code, guest_id=guest.id)
    return None


def test_every_public_route_is_fuzzed(practice: Box) -> None:
    """R9: the fuzzed document has every JSON route of the public site (the WebSocket and the
    pages aside), so nothing there goes unfuzzed."""
    routes = set()
    for route in practice.public.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/v/{token}/") and route.method != "HEAD" and not (
                path.endswith("/signal")):
            routes.add((route.method, path))
    assert {(op.method.upper(), op.path) for op in OPERATIONS} == routes


def _aim(practice: Box, case: Any, known: Known, session: Any, link: Any) -> dict[str, str]:
    """Point ``case`` at the link drawn (the session's own, or one of the known ones) and give
    it the session's cookie, if there is a session; returns the cookies to send."""
    if link == "own":
        case.path_parameters["token"] = (session.token if session is not None
                                         else known.scheduled.link_token)
    elif isinstance(link, int):
        case.path_parameters["token"] = known.path_values()["token"][link]
    if session is None:
        return {}
    session_id = new_session_id()
    assert practice.public.app[PATIENT_SESSIONS].restore(session_id, session, 0.0, 0.0)
    return {PATIENT_COOKIE: session_id}


@pytest.mark.parametrize("operation", OPERATIONS, ids=ids(OPERATIONS))
@FUZZ
@given(data=st.data())
async def test_public_operation(practice: Box, ground: Ground, log_watch: LogWatch,
                                operation: APIOperation, data: st.DataObject) -> None:
    """R9 (A01 access control, A03 injection, A04/A05 error handling), R1: each generated
    request to a patient link, anonymous and with the verified session of a patient (scheduled
    or waiting) or a guest, never fails on the server, is refused in the documented error
    format, succeeds only on the session's own link (or, without a session, only for the
    link's info and the code), and logs no error."""
    case = draw_case(data, operation)
    link = data.draw(LINKS, label="link")
    origin = data.draw(origins(practice.public), label="Origin")
    needs_session = operation.path not in OPEN_PATHS
    unsafe = case.method.upper() != "GET"
    for role in ROLES:
        log_watch.mark()
        known = ground.known()
        session = _session_of(known, role)
        cookies = _aim(practice, case, known, session, link)
        answer = await send(practice.public, case, cookies=cookies, headers={"Origin": origin})
        own_link = session is not None and case.path_parameters.get("token") == session.token
        check_answer(operation, answer, allowed=own_link or not needs_session, role=role)
        log_watch.assert_clean(f"as {role}: {answer.describe()}")
        code = answer.json.get("error") if isinstance(answer.json, dict) else None
        if unsafe and (answer.status < 300 or code in CHANGING_ERRORS):
            ground.changed()


@pytest.mark.parametrize("operation", OPERATIONS, ids=ids(OPERATIONS))
@FUZZ
@given(data=st.data())
async def test_public_operation_while_sealed(practice: Box, ground: Ground, log_watch: LogWatch,
                                             operation: APIOperation,
                                             data: st.DataObject) -> None:
    """R9 (A04/A05): after a restart (the vault sealed until a staff member logs in) every
    patient link, with or without a session from before, answers generated requests with the
    documented ``503 practice_offline`` (or ``vault_sealed``) or a 4xx in the error format —
    no other server error — and logs no error."""
    known = ground.known()
    sessions = {role: _session_of(known, role) for role in ROLES}
    practice.services.vault.seal()
    case = draw_case(data, operation)
    link = data.draw(LINKS, label="link")
    for role, session in sessions.items():
        log_watch.mark()
        cookies = _aim(practice, case, known, session, link)
        answer = await send(practice.public, case, cookies=cookies,
                            headers={"Origin": origin_of(practice.public)})
        check_answer(operation, answer, allowed=operation.path in OPEN_PATHS, role=role,
                     not_now=OFFLINE)
        log_watch.assert_clean(f"as {role}: {answer.describe()}")
