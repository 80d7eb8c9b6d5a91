"""Fuzzing support: hypothesis settings, a box under fuzz, sending schemathesis cases, checks.

Profiles (environment variables, read once at import):

- default (``make test``): ``SZ_FUZZ_EXAMPLES`` examples per operation and role (12 unless set),
  derandomized (the same cases on every run: no flaky failures), no example database.
- deep (``make fuzz``, i.e. ``SZ_FUZZ_PROFILE=deep``): 500 examples per operation and role unless
  ``SZ_FUZZ_EXAMPLES`` says otherwise, a new random seed every run (hypothesis prints the seed
  and a reproduction blob on failure), and the box's rate limiters widened, so that the examples
  after the first few dozen reach the parsers instead of being answered 429 (rate limits
  themselves are tested in ``tests/web/test_login_security.py``).

Run deep: ``make fuzz``, or ``SZ_FUZZ_PROFILE=deep SZ_FUZZ_EXAMPLES=2000 tests/netns-run
.venv/bin/pytest -q tests/fuzz -k public``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core import NotSet
from yarl import URL

from appliance.config import Settings, VaultSettings, WebSettings
from appliance.practice.models import Appointment, Role
from appliance.practice.services import PracticeServices
from appliance.runtime import build_box
from appliance.web.api import ERROR_SCHEMA
from appliance.web.app import build_public_app, build_staff_app
from appliance.web.context import CODE_LIMIT, LOGIN_LIMIT, PUBLIC_LIMIT
from appliance.web.device_check import DEVICE_CHECK_LIMIT
from appliance.web.security import RateLimiter
from tests.web import conftest as web_fixtures
from tests.web.conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, DOCTOR_PASSWORD, Box

# the web tests' fixtures; ``settings`` and ``box`` are replaced below
services, practice = web_fixtures.services, web_fixtures.practice

DEEP: Final = os.environ.get("SZ_FUZZ_PROFILE", "").lower() == "deep"
EXAMPLES: Final = int(os.environ.get("SZ_FUZZ_EXAMPLES") or (500 if DEEP else 12))
#: the hypothesis settings of every fuzz test (see the module docstring)
FUZZ: Final = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not DEEP,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the box is built once per test, on purpose
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
#: a request that takes longer than this is a hang (a defect), not a slow answer
REQUEST_TIMEOUT_S: Final = 10.0
FOREIGN_ORIGIN: Final = "https://evil.example"
#: an RFC 9110 token: anything else as a header name is refused by the client or the parser
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: headers the client sets itself (a generated value would break the framing of the request)
_OWN_HEADERS: Final = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "expect",
    "content-encoding", "accept-encoding", "te", "trailer",
})
#: answers of the device check (R13) when every echo slot is taken: documented, with a retry
BUSY_CODE: Final = "device_check_busy"


#: where the fuzzed box keeps its vault: a tmpfs, if there is one (see :func:`settings`)
TMPFS: Final = Path("/dev/shm")


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """``tests/web``'s settings, but the vault on a tmpfs where there is one: every change
    the fuzzer makes is a journal append with ``fdatasync``, ~2 ms each on this disk and most of
    an example's time; crash safety is tested in ``tests/vault``, not here."""
    base = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else tmp_path
    folder = Path(tempfile.mkdtemp(prefix="sz-fuzz-", dir=base))
    try:
        yield Settings(
            web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
            vault=VaultSettings(path=folder / "vault"),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def box(
    request: pytest.FixtureRequest, settings: Settings, services: PracticeServices,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> Box:
    """Both sites of a box that has not been onboarded (as ``tests/web``'s ``box``); in the
    deep profile, or for a test module with ``RATE_LIMITS = "wide"``, with rate limits no
    fuzzer reaches (see the module docstring)."""
    parts = build_box(settings, services)
    staff_app = build_staff_app(parts)
    public_app = build_public_app(parts)
    if DEEP or getattr(request.module, "RATE_LIMITS", "real") == "wide":
        for app, key in ((staff_app, LOGIN_LIMIT), (public_app, PUBLIC_LIMIT),
                         (public_app, CODE_LIMIT), (public_app, DEVICE_CHECK_LIMIT)):
            app[key] = RateLimiter(1e9, 10**9)
    staff = await aiohttp_client(staff_app)
    public = await aiohttp_client(public_app)
    return Box(services, staff, public)


# --- the practice's data an example works on ----------------------------------------------------


@dataclass(frozen=True)
class Known:
    """Real ids of fresh data: path parameters that lead past the look-ups into the handlers.

    Two appointments of Dr. Müller in 5 minutes, each with an invited guest: the first one
    scheduled, the second one's patient checked in (waiting room).
    """

    scheduled: Appointment
    waiting: Appointment
    usernames: tuple[str, ...] = ("admin", "dr.mueller", "mfa")

    def path_values(self) -> dict[str, list[str]]:
        """Real values per path parameter name (staff and public sites)."""
        appointments = (self.scheduled, self.waiting)
        return {
            "username": list(self.usernames),
            "patient_id": [a.patient_id for a in appointments],
            "appointment_id": [a.id for a in appointments],
            "guest_id": [a.guests[0].id for a in appointments],
            "token": [t for a in appointments for t in (a.link_token, a.guests[0].link_token)],
            "target": ["usb", "cloud"],  # backup targets: the fuzzed box has none
        }


def _appointment(services: PracticeServices, name: str, *, check_in: bool) -> Appointment:
    patient = services.patients.add("admin", full_name=name)
    book = services.appointments
    appointment = book.create("admin", doctor="dr.mueller", patient_id=patient.id,
                              start=services.clock.now() + timedelta(minutes=5))
    book.invite_guest("admin", appointment.id, label="Dolmetscherin")
    if check_in:
        services.reception.check_in(appointment.link_token, appointment.access_code,
                                    full_name=name, consent_confirmed=True, rules_confirmed=True)
    return book.get(appointment.id)


#: the ``practice`` fixture's staff: username → (name, roles, LANR, password)
ROSTER: Final = {
    "admin": ("Anna Admin", frozenset({Role.ADMIN}), None, ADMIN_PASSWORD),
    "dr.mueller": ("Dr. Maria Müller", frozenset({Role.DOCTOR}), "123456701", DOCTOR_PASSWORD),
    "mfa": ("Tom MFA", frozenset({Role.ASSISTANT}), None, ASSISTANT_PASSWORD),
}


class Ground:
    """The data the examples work on, made anew after an example may have changed it (a
    successful change: cancelled, removed, checked in, a member's roles ...), so that a
    destructive case never takes the ground from under the cases after it."""

    def __init__(self, services: PracticeServices) -> None:
        self._services = services
        self._known: Known | None = None

    def known(self) -> Known:
        """The current data (made now if there is none or it may have changed)."""
        if self._known is None:
            if self._services.vault.sealed:  # an admin's case locked the box: log in again
                self._services.staff.login("admin", ADMIN_PASSWORD, None, source="fuzz")
            self._restore_staff()
            self._known = Known(
                scheduled=_appointment(self._services, "Erika Mustermann", check_in=False),
                waiting=_appointment(self._services, "Max Mustermann", check_in=True))
        return self._known

    def changed(self) -> None:
        """An example may have changed the data: make new data for the next one."""
        self._known = None

    def _restore_staff(self) -> None:
        """Admin, doctor and assistant as the ``practice`` fixture made them (an admin's case
        may have changed their roles or removed one; the roles' checks rely on them)."""
        staff = self._services.staff
        current = {member.username: member for member in staff.list()}
        actor = next(name for name, member in current.items() if Role.ADMIN in member.roles)
        for username, (name, roles, lanr, password) in ROSTER.items():  # admin first
            member = current.get(username)
            if member is None:
                staff.add(actor, username=username, display_name=name, roles=roles,
                          password=password, lanr=lanr)
            elif (member.display_name, member.roles, member.lanr) != (name, roles, lanr):
                staff.update(actor, username, display_name=name, roles=roles, lanr=lanr)
            if username == "admin":
                actor = username


@pytest.fixture
def ground(practice: Box) -> Ground:
    """The data of this test's examples on the onboarded box (kept across its examples)."""
    return Ground(practice.services)


# --- cases ----------------------------------------------------------------------------------------


def path_parameter_names(operation: APIOperation) -> list[str]:
    """The operation's path parameters, in path order."""
    return re.findall(r"\{([^}]+)\}", operation.path)


_STRATEGIES: dict[tuple[str, str], st.SearchStrategy[Case]] = {}


def case_strategy(operation: APIOperation) -> st.SearchStrategy[Case]:
    """Valid and invalid cases of ``operation`` (schemathesis 4), built once per operation.

    Negative cases need something to break (a parameter, a body, a security scheme): an
    operation without any gets positive cases only (schemathesis finds negative ones
    unsatisfiable there).
    """
    key = (operation.method, operation.path)
    if key not in _STRATEGIES:
        raw = operation.definition.raw
        negatable = ("requestBody" in raw or bool(path_parameter_names(operation))
                     or "security" in raw)
        options = [operation.as_strategy(GenerationMode.POSITIVE)]
        if negatable:
            options.append(operation.as_strategy(GenerationMode.NEGATIVE))
        _STRATEGIES[key] = st.one_of(options)
    return _STRATEGIES[key]


def draw_case(data: st.DataObject, operation: APIOperation) -> Case:
    """A case of ``operation``."""
    return data.draw(case_strategy(operation), label="case")


def draw_real_ids(data: st.DataObject, operation: APIOperation) -> dict[str, int] | None:
    """For half of the cases: which real id to put in each path parameter (an index into
    :meth:`Known.path_values`), else None (the generated values stay)."""
    names = path_parameter_names(operation)
    if not data.draw(st.booleans(), label="real ids"):
        return None
    sizes = {"username": 3, "token": 4}
    return {name: data.draw(st.integers(0, sizes.get(name, 2) - 1), label=name)
            for name in names}


#: body fields that name something of the practice: with real ids, they get real values too
_BODY_IDS: Final = {"doctor": "username", "patient_id": "patient_id"}


def with_real_ids(case: Case, choice: Mapping[str, int] | None, known: Known) -> Case:
    """``case`` with the chosen real ids in its path, and real values in the body's fields
    that name a doctor or a patient (in place; None leaves the case as it is)."""
    if choice is None:
        return case
    values = known.path_values()
    for name, index in choice.items():
        case.path_parameters[name] = values[name][index]
    if isinstance(case.body, dict):
        for field_name, kind in _BODY_IDS.items():
            if field_name in case.body:
                case.body[field_name] = "dr.mueller" if kind == "username" else values[kind][0]
    return case


#: query parameters the handlers read that the document does not declare (``?q=``, ``?date=``)
EXTRA_QUERY: Final = st.dictionaries(
    st.sampled_from(["q", "date", "token", "lang"]),
    st.one_of(st.text(max_size=40), st.sampled_from(
        ["2024-02-29", "2023-02-29", "0000-01-01", "9999-12-31", "-1", "", "%00", "\x00"])),
    max_size=2,
)


@dataclass
class Answer:
    """What the box answered to one request."""

    method: str
    path: str
    status: int
    content_type: str
    headers: Mapping[str, str]
    sent: str = ""
    text: str | None = None
    json: Any = None
    streamed: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for assertion messages."""
        body = "(stream, not read)" if self.streamed else (self.text or "")[:300]
        return (f"{self.method} {self.path} {self.sent[:300]} -> {self.status} "
                f"{self.content_type}: {body}")


def _sendable_header(name: str, value: Any) -> bool:
    text = str(value)
    return (bool(_TOKEN.fullmatch(name)) and name.lower() not in _OWN_HEADERS
            and text.isprintable() and text == text.strip())


def _body_bytes(case: Case) -> bytes | None:
    body = case.body
    if isinstance(body, NotSet):
        return None
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    # ensure_ascii: lone surrogates become escapes ("\ud800"), as a browser's JSON.stringify
    # sends them; NaN and Infinity go out as Python writes them (the box must refuse them)
    return json.dumps(body).encode("ascii")


async def send(
    client: TestClient, case: Case, *, cookies: Mapping[str, str] | None = None,
    headers: Mapping[str, str | None] | None = None,
    extra_query: Mapping[str, str] | None = None,
) -> Answer:
    """Send ``case`` through the aiohttp test client (the box runs in this event loop).

    ``cookies`` and ``headers`` replace the generated ones of the same name (a value of None
    removes the header); ``extra_query`` adds parameters the document does not declare.
    Headers no HTTP/1.1 client could send (a name that is no token, control characters) are
    left out: they would not reach the box's code, only the HTTP parser.
    """
    method = case.method.upper()
    overrides = {k.lower(): v for k, v in (headers or {}).items()}
    out_headers: dict[str, str] = {}
    for name, value in (case.headers or {}).items():
        if name.lower() in overrides or not _sendable_header(name, value):
            continue
        out_headers[name] = str(value)
    for name, value in (headers or {}).items():
        if value is not None:
            out_headers[name] = value
    body = _body_bytes(case)
    if body is not None and "content-type" not in {k.lower() for k in out_headers}:
        out_headers["Content-Type"] = case.media_type or "application/json"
    out_cookies = {str(k): str(v) for k, v in (case.cookies or {}).items()
                   if _TOKEN.fullmatch(str(k)) and str(v).isprintable()}
    out_cookies.update(cookies or {})
    query: list[tuple[str, str]] = []
    for name, value in {**(case.query or {}), **(extra_query or {})}.items():
        for item in value if isinstance(value, list) else [value]:
            query.append((str(name), json.dumps(item) if isinstance(item, dict) else str(item)))
    path = case.formatted_path
    url = client.make_url("/").join(URL(path, encoded=True))
    if query:
        url = url.with_query(query)
    client.session.cookie_jar.clear()  # nothing carries over from an earlier example
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with client.session.request(
        method, url, headers=out_headers, cookies=out_cookies, data=body, timeout=timeout,
        allow_redirects=False,
    ) as response:
        answer = Answer(method=method, path=str(url.relative()), status=response.status,
                        content_type=response.content_type, headers=dict(response.headers),
                        sent=(body or b"").decode("utf-8", "replace"))
        if response.content_type == "text/event-stream" and response.status < 300:
            answer.streamed = True  # a live stream: the status and headers are the answer
            response.close()
            return answer
        raw = await response.read()
    answer.text = raw.decode("utf-8", "replace")
    if answer.content_type == "application/json":
        try:
            answer.json = json.loads(raw)
        except ValueError:
            answer.notes.append("the body is not JSON")
    return answer


# --- checks ---------------------------------------------------------------------------------------


def _response_schema(operation: APIOperation, status: int) -> dict[str, Any] | None:
    responses = operation.definition.raw["responses"]
    entry = responses.get(str(status))
    if entry is None:
        return None
    return entry["content"].get("application/json", {}).get("schema")


def check_answer(operation: APIOperation, answer: Answer, *, allowed: bool,
                 not_now: frozenset[str] = frozenset(), role: str = "anonymous") -> None:
    """R9 for one answer: no server error; refusals are 4xx JSON in the documented error
    format; success only for those allowed (``x-access``) and as documented; security headers
    on every answer. ``not_now``: error codes that may come as 503 in the box's state (e.g.
    ``vault_not_initialized`` before onboarding: "not now", not a failure)."""
    where = f"as {role}: {answer.describe()}"
    assert not answer.notes, f"{answer.notes}: {where}"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", where
    assert "frame-ancestors 'none'" in answer.headers.get("Content-Security-Policy", ""), where
    if answer.status == 503 and isinstance(answer.json, dict) and (
            answer.json.get("error") == BUSY_CODE):
        return  # the device check is full (documented in the operation, with retry_after_s)
    unavailable = answer.status == 503 and isinstance(answer.json, dict) and (
        answer.json.get("error") in not_now)
    assert answer.status < 500 or unavailable, f"server error: {where}"
    if answer.status >= 400:
        assert answer.content_type == "application/json", f"refusal not JSON: {where}"
        errors = sorted(jsonschema.Draft202012Validator(ERROR_SCHEMA).iter_errors(answer.json),
                        key=str)
        assert not errors, f"refusal not in the error format ({errors[0].message}): {where}"
        assert answer.json["error"] and answer.json["message"].strip(), where
        return
    assert 200 <= answer.status < 300, f"unexpected status: {where}"
    assert allowed, f"success without the access {operation.definition.raw['x-access']}: {where}"
    documented = [code for code in operation.definition.raw["responses"] if code != "default"]
    assert str(answer.status) in documented, f"undocumented status {documented}: {where}"
    schema = _response_schema(operation, answer.status)
    if schema and not answer.streamed:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(answer.json), key=str)
        assert not errors, f"answer does not match its schema ({errors[0].message}): {where}"


class LogWatch:
    """No ERROR record and no traceback in the log while an example ran (caplog)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        self._seen = 0

    def mark(self) -> None:
        """Start watching from here (the records of earlier examples are not this one's)."""
        self._seen = len(self._caplog.records)

    def problems(self) -> list[str]:
        """Records since :meth:`mark` that show a defect."""
        found = []
        for record in self._caplog.records[self._seen:]:
            text = record.getMessage()
            if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in text:
                found.append(f"{record.levelname} {record.name}: {text}")
        return found

    def assert_clean(self, context: str = "") -> None:
        """Fail with the records that show a defect."""
        problems = self.problems()
        assert not problems, f"{context}: {problems}"


@pytest.fixture
def log_watch(caplog: pytest.LogCaptureFixture) -> LogWatch:
    """A :class:`LogWatch` over this test's log (WARNING and above are captured anyway)."""
    caplog.set_level(logging.WARNING)
    return LogWatch(caplog)


def origin_of(client: TestClient) -> str:
    """The site's own origin (``http://127.0.0.1:<port>``), as its pages send it."""
    return str(client.make_url("/").origin())


def origins(client: TestClient) -> st.SearchStrategy[str | None]:
    """Mostly the page's own origin; sometimes a foreign one or none (CSRF, R9 A01)."""
    own = origin_of(client)
    return st.sampled_from([own] * 6 + [FOREIGN_ORIGIN, None])


def new_session_id() -> str:
    """A session id as the box makes them."""
    return secrets.token_urlsafe(32)


def operations_of(schema: Any) -> list[APIOperation]:
    """Every operation of a loaded schemathesis schema."""
    return [result.ok() for result in schema.get_all_operations()]


def ids(operations: Iterable[APIOperation]) -> list[str]:
    """Readable test ids: ``POST /api/login``."""
    return [f"{op.method.upper()} {op.path}" for op in operations]
