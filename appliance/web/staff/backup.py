"""The backup as the staff site offers it: the admin's status and actions, the dashboard's
warnings, and the restore of a new box in the onboarding wizard (docs/backup.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from aiohttp import web

from appliance.backup.service import Activity, BackupError, BackupService
from appliance.errors import Conflict, InvalidInput
from appliance.i18n import translate
from appliance.vault import RecoveryKey
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import current_staff
from appliance.web.backup_chart import Series, render_growth
from appliance.web.context import BACKUP
from appliance.web.schema import OK, Form, Ok, View
from appliance.web.security import request_language
from appliance.web.staff.common import practice_timezone, services_of

TargetName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
RepositoryUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
RecoveryKeyText = Annotated[str, msgspec.Meta(min_length=20, max_length=200)]
SVG: Final = "image/svg+xml"
Credentials = Annotated[dict[str, Annotated[str, msgspec.Meta(max_length=2000)]],
                        msgspec.Meta(max_length=10)]


class SuccessView(View, frozen=True, kw_only=True):
    """A target's last good backup."""

    at: datetime
    snapshot_id: str
    files: int
    bytes: int
    data_added: int


class ProblemView(View, frozen=True, kw_only=True):
    """A target's last failure or verification."""

    at: datetime
    ok: bool
    detail: str


class TargetView(View, frozen=True, kw_only=True):
    """One target: where, from where configured, how it stands."""

    name: str
    url: str
    #: "settings" (the settings file) or "box" (added in the admin UI)
    source: Literal["settings", "box"]
    last_success: SuccessView | None
    last_failure: ProblemView | None
    last_verification: ProblemView | None
    #: the repository's size after each good run: [time, bytes]
    sizes: list[tuple[datetime, int]]


class ActivityView(View, frozen=True, kw_only=True):
    """A run, verification or restore in the background."""

    kind: str
    started: datetime
    target: str
    share: float
    finished: datetime | None
    ok: bool | None
    detail: str


class BackupView(View, frozen=True, kw_only=True):
    """The backup's state for the admin's status page."""

    password_known: bool
    schedule: str | None
    next_run: datetime | None
    targets: list[TargetView]
    activity: ActivityView | None
    warnings: list[str]


class WarningsView(View, frozen=True, kw_only=True):
    """What the dashboard warns every member of the staff about."""

    warnings: list[str]


class TargetChoice(Form, frozen=True, kw_only=True):
    """Which target."""

    target: TargetName


class StartForm(Form, frozen=True, kw_only=True):
    """Start a run or a verification, of one target or (without) all."""

    target: TargetName | None = None


class NewTarget(Form, frozen=True, kw_only=True):
    """A target added in the admin UI; its credentials never reach the settings file."""

    name: TargetName
    url: RepositoryUrl
    credentials: Credentials = msgspec.field(default_factory=dict)


class TestView(View, frozen=True, kw_only=True):
    """How a target answered: ``ok``, ``empty`` (no repository yet) or ``error``."""

    state: Literal["ok", "empty", "error"]
    detail: str


class RecoveryKeyForm(Form, frozen=True, kw_only=True):
    """The recovery key from the emergency sheet."""

    recovery_key: RecoveryKeyText


class RestoreSource(Form, frozen=True, kw_only=True):
    """Where a new box finds its backup, and the key that opens it."""

    url: RepositoryUrl
    recovery_key: RecoveryKeyText
    credentials: Credentials = msgspec.field(default_factory=dict)
    snapshot: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}$")] | None = None


class SnapshotView(View, frozen=True, kw_only=True):
    """A snapshot offered for a restore."""

    id: str
    short_id: str
    time: str


def _service(request: web.Request) -> BackupService:
    return request.app[BACKUP]


def _activity(activity: Activity | None) -> ActivityView | None:
    if activity is None:
        return None
    return ActivityView(kind=activity.kind, started=activity.started, target=activity.target,
                        share=activity.share, finished=activity.finished, ok=activity.ok,
                        detail=activity.detail)


def _target_view(service: BackupService, state: dict[str, Any]) -> list[TargetView]:
    from_settings = {t.name for t in service.settings.backup.targets}
    views = []
    for target in service.targets:
        entry = state.get(target.name, {})
        success, failure = entry.get("success"), entry.get("failure")
        verification = entry.get("verification")
        views.append(TargetView(
            name=target.name, url=target.url,
            source="settings" if target.name in from_settings else "box",
            last_success=None if success is None else SuccessView(
                at=datetime.fromisoformat(success["at"]), snapshot_id=success["snapshot_id"],
                files=success["files"], bytes=success["bytes"],
                data_added=success["data_added"]),
            last_failure=None if failure is None else ProblemView(
                at=datetime.fromisoformat(failure["at"]), ok=False, detail=failure["detail"]),
            last_verification=None if verification is None else ProblemView(
                at=datetime.fromisoformat(verification["at"]), ok=verification["ok"],
                detail=verification["detail"]),
            sizes=[(datetime.fromisoformat(at), size) for at, size in entry.get("sizes", [])],
        ))
    return views


async def _backup_status(request: web.Request) -> web.Response:
    service = _service(request)
    schedule = service.settings.backup.schedule
    return reply(BackupView(
        password_known=service.passwords.known,
        schedule=None if schedule is None else schedule.strftime("%H:%M"),
        next_run=service.next_run(services_of(request).office.timezone()),
        targets=_target_view(service, service.state()),
        activity=_activity(service.activity), warnings=_warning_texts(request)))


async def _growth_chart(request: web.Request) -> web.Response:
    service = _service(request)
    state = service.state()
    series = [Series(name=t.name, url=t.url,
                     sizes=[(datetime.fromisoformat(at), size)
                            for at, size in state.get(t.name, {}).get("sizes", [])])
              for t in service.targets]
    svg = render_growth(series, tz=practice_timezone(services_of(request)),
                        lang=request_language(request))
    return web.Response(text=svg, content_type=SVG, charset="utf-8",
                        headers={"Cache-Control": "no-store"})


def backup_warnings(request: web.Request) -> WarningsView:
    """The dashboard's warnings (also on the live event ``backup``)."""
    return WarningsView(warnings=_warning_texts(request))


def _warning_texts(request: web.Request) -> list[str]:
    lang = request_language(request)
    return [translate(f"backup.warning.{code}", lang, **params)
            for code, params in _service(request).warnings()]


async def _backup_warnings(request: web.Request) -> web.Response:
    current_staff(request)
    return reply(backup_warnings(request))


def _start(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        data = await read_body(request, StartForm)
        try:
            activity = _service(request).start(kind, [data.target] if data.target else [])
        except BackupError as exc:
            raise Conflict(detail=exc.detail) from None
        return reply(_activity(activity), status=202)

    handler.__name__ = f"_start_backup_{kind}"
    return handler


async def _test_target(request: web.Request) -> web.Response:
    data = await read_body(request, TargetChoice)
    state, detail = await _service(request).test(data.target)
    return reply(TestView(state=state, detail=detail))  # type: ignore[arg-type]


async def _init_repository(request: web.Request) -> web.Response:
    data = await read_body(request, TargetChoice)
    await _service(request).init(data.target)
    return reply(OK)


async def _add_backup_target(request: web.Request) -> web.Response:
    data = await read_body(request, NewTarget)
    _service(request).add_target(data.name, data.url, dict(data.credentials))
    return reply(OK, status=201)


async def _remove_backup_target(request: web.Request) -> web.Response:
    _service(request).remove_target(request.match_info["target"])
    return reply(OK)


def _recovery_key(text: str) -> RecoveryKey:
    try:
        return RecoveryKey.parse(text)
    except ValueError as exc:
        raise InvalidInput(field="recovery_key", detail=str(exc)) from None


async def _backup_key(request: web.Request) -> web.Response:
    data = await read_body(request, RecoveryKeyForm)
    key = _recovery_key(data.recovery_key)
    if not services_of(request).vault.recovery_key_matches(key):
        raise InvalidInput(field="recovery_key", detail="gehört nicht zu diesem Tresor (oder "
                           "wurde inzwischen ersetzt)")
    _service(request).keep_password(key)
    return reply(OK)


# --- restoring a new box (the onboarding wizard) --------------------------------------------


def _new_box(request: web.Request) -> None:
    if services_of(request).vault.initialized:
        raise Conflict(detail="diese Box ist schon eingerichtet; eine Wiederherstellung gibt es "
                       "nur auf einer neuen Box")


async def _restore_snapshots(request: web.Request) -> web.Response:
    _new_box(request)
    data = await read_body(request, RestoreSource)
    try:
        snapshots = await _service(request).restore_snapshots(
            data.url, _recovery_key(data.recovery_key), dict(data.credentials))
    except BackupError as exc:
        raise Conflict(detail=exc.detail) from None
    return reply([SnapshotView(id=s.id, short_id=s.short_id, time=s.time) for s in snapshots])


async def _restore(request: web.Request) -> web.Response:
    _new_box(request)
    data = await read_body(request, RestoreSource)
    try:
        activity = _service(request).start_restore(
            data.url, _recovery_key(data.recovery_key), snapshot_id=data.snapshot,
            credentials=dict(data.credentials))
    except BackupError as exc:
        raise Conflict(detail=exc.detail) from None
    return reply(_activity(activity), status=202)


async def _restore_progress(request: web.Request) -> web.Response:
    activity = _service(request).activity
    if activity is None or activity.kind != "restore":
        return reply(None)
    return reply(_activity(activity))


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/backup", handler=_backup_status, access="admin",
             summary="Die Datensicherung: Ziele, letzte Läufe und Prüfungen, nächster Lauf",
             response=BackupView),
    Endpoint(method="GET", path="/api/backup/growth.svg", handler=_growth_chart,
             access="admin", content_type=SVG, response=str,
             summary="Die Größe jedes Sicherungsziels über die Zeit als Bild (SVG): eine Linie "
                     "je Ziel, Daten in der Zeitzone der Praxis"),
    Endpoint(method="GET", path="/api/backup/warnings", handler=_backup_warnings,
             summary="Warnungen der Datensicherung für das Dashboard", response=WarningsView),
    Endpoint(method="POST", path="/api/backup/run", handler=_start("run"), access="admin",
             body=StartForm, summary="Jetzt sichern (im Hintergrund)", response=ActivityView,
             status=202),
    Endpoint(method="POST", path="/api/backup/verify", handler=_start("verify"),
             access="admin", body=StartForm,
             summary="Jetzt prüfen: restic check und eine Probe-Wiederherstellung",
             response=ActivityView, status=202),
    Endpoint(method="POST", path="/api/backup/test", handler=_test_target, access="admin",
             body=TargetChoice, summary="Die Verbindung zu einem Ziel testen", response=TestView),
    Endpoint(method="POST", path="/api/backup/init", handler=_init_repository, access="admin",
             body=TargetChoice, summary="Auf einem Ziel ein neues Repository anlegen",
             response=Ok),
    Endpoint(method="POST", path="/api/backup/targets", handler=_add_backup_target,
             access="admin", body=NewTarget,
             summary="Ein Ziel hinzufügen (Zugangsdaten bleiben auf der Box)", response=Ok,
             status=201),
    Endpoint(method="DELETE", path="/api/backup/targets/{target}",
             handler=_remove_backup_target, access="admin",
             summary="Ein in der Verwaltung hinzugefügtes Ziel entfernen", response=Ok),
    Endpoint(method="POST", path="/api/backup/key", handler=_backup_key, access="admin",
             body=RecoveryKeyForm,
             summary="Das Passwort der Sicherungen aus dem Wiederherstellungsschlüssel ableiten",
             response=Ok),
    Endpoint(method="POST", path="/api/onboarding/restore/snapshots",
             handler=_restore_snapshots, access="public", body=RestoreSource,
             summary="Neue Box: die Sicherungen eines Repositories auflisten",
             response=list[SnapshotView]),
    Endpoint(method="POST", path="/api/onboarding/restore", handler=_restore, access="public",
             body=RestoreSource,
             summary="Neue Box: eine Sicherung wiederherstellen (im Hintergrund)",
             response=ActivityView, status=202),
    Endpoint(method="GET", path="/api/onboarding/restore", handler=_restore_progress,
             access="public", summary="Neue Box: wie weit die Wiederherstellung ist",
             response=ActivityView | None),
)
