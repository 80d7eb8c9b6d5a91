"""The one composition root: builds the box (every long-lived part, once), serves its sites,
starts and stops them (docs/modules.md)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.backup.password import PasswordFiles
from appliance.backup.service import BackupService
from appliance.clock import Clock
from appliance.config import Settings
from appliance.discovery import Announcer
from appliance.practice.appointments import AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.patients import PatientRegistry
from appliance.practice.profile import PracticeOffice
from appliance.practice.reception import Reception
from appliance.practice.retention import RetentionPolicy
from appliance.practice.services import PracticeServices
from appliance.practice.staff import StaffDirectory
from appliance.rtc.echo_peer import EchoService
from appliance.rtc.signaling import Member, SignalingHub
from appliance.rtc.turn import TurnRelay
from appliance.tls.sites import BoxTls, staff_lan_addresses
from appliance.uplinks import HISTORY_FILE, LineState, LineStatus, UplinkMonitor
from appliance.vault import KdfParams, Vault
from appliance.vault.resume import ResumeFile
from appliance.web.box_lock import BoxLock
from appliance.web.context import Box
from appliance.web.devices import DEVICE_KEY_FILE, KnownDevices
from appliance.web.events import EventHub
from appliance.web.server import async_run_sites
from appliance.web.sessions import (
    PatientSession,
    SessionKeeper,
    StaffSession,
    patient_sessions,
    staff_sessions,
)

_LOGGER = logging.getLogger(__name__)


def build_services(
    settings: Settings, *, clock: Clock | None = None, kdf: KdfParams | None = None
) -> PracticeServices:
    """Wire the practice services of the box from its settings."""
    clock = clock or Clock()
    vault = Vault(settings.vault.path, kdf=kdf or KdfParams())
    audit = AuditLog(vault, clock)
    office = PracticeOffice(vault, audit)
    staff = StaffDirectory(vault, audit, clock)
    patients = PatientRegistry(vault, audit, clock)
    appointments = AppointmentBook(vault, audit, clock, staff, patients, office)
    retention = RetentionPolicy(
        vault, audit, clock, days=settings.practice.retention_days, book=appointments
    )
    services = PracticeServices(
        clock=clock, vault=vault, audit=audit, office=office, staff=staff,
        patients=patients, appointments=appointments,
        reception=Reception(appointments, audit, clock, patients, office),
        calls=Calls(appointments, audit, clock), retention=retention,
    )
    vault.add_unseal_listener(services.purge_expired)
    # whenever the box holds the recovery key, it keeps the backups' password derived from it
    vault.add_recovery_key_listener(PasswordFiles(settings.backup_dir).keep)
    return services


def build_box(settings: Settings, services: PracticeServices | None = None, *,
              config_path: Path | None = None) -> Box:
    """Every long-lived part of the box, wired once: what both sites take. ``config_path``:
    the settings file the box was started with (the backup keeps a copy)."""
    services = services or build_services(settings)
    relay = TurnRelay(settings.turn)
    events = EventHub()
    services.appointments.add_state_listener(
        lambda appt: events.publish({"type": "appointment", "id": appt.id}))
    hub = _signaling_hub(services, relay)
    staff, patients = staff_sessions(), patient_sessions()
    keeper = SessionKeeper(ResumeFile(settings.vault.resume_dir, services.vault), services.vault)
    keeper.keep(  # a removed member's sessions never come back
        "staff", staff, StaffSession, reopens=True,
        belongs=lambda session: session.username in services.vault.members())
    keeper.keep("patient", patients, PatientSession, reopens=False)

    def end_sessions() -> None:
        keeper.end_all()
        hub.close_all()  # the doctors' sockets; no visitor is in when the box locks

    tls = BoxTls(settings, clock=services.clock)
    turn = settings.turn
    uplinks = UplinkMonitor(turn.uplinks, turn_port=turn.port,
                            history_file=settings.vault.resume_dir / HISTORY_FILE,
                            interval_s=turn.probe_interval_s, timeout_s=turn.probe_timeout_s)
    _follow_lines(uplinks, relay, hub, events)
    backup = BackupService(settings, config_path=config_path)
    backup.add_listener(lambda: events.publish({"type": "backup"}))
    return Box(
        settings=settings, services=services, events=events, hub=hub, relay=relay,
        echo=EchoService(
            ice_servers=lambda: relay.ice_servers_for("box", ("device-check", "echo"))),
        page_ice_servers=lambda role, bound_to: relay.ice_servers_for(
            role, ("device-check", relay.opaque_id(bound_to))),
        staff_sessions=staff, patient_sessions=patients, session_keeper=keeper,
        known_devices=KnownDevices(settings.vault.path.parent / DEVICE_KEY_FILE),
        lock=BoxLock(
            services, hours=settings.vault.lock_hours, idle_hours=settings.vault.lock_idle_hours,
            staff_present=lambda: len(staff) > 0, visitors_present=hub.has_visitors,
            end_sessions=end_sessions, changed=lambda: events.publish({"type": "box-lock"})),
        tls=tls, uplinks=uplinks, discovery=_announcer(settings, services, tls),
        backup=backup,
    )


def _follow_lines(uplinks: UplinkMonitor, relay: TurnRelay, hub: SignalingHub,
                  events: EventHub) -> None:
    """When a line changes: patients get TURN only on healthy lines; a dead line moves the
    calls (the hub's push), a line back is offered to them again without moving them; open
    staff pages hear of it (the dashboard's warning)."""

    def changed(line: LineStatus, before: LineState) -> None:
        relay.mark_healthy(uplinks.healthy_hosts())
        if line.state is LineState.DOWN:
            told = hub.push_line_failover()
            _LOGGER.info("line %s down: %d participants told to reconnect", line.name, told)
        elif before is LineState.DOWN:
            # back: running calls stay where they are, but a later rebuild may use it again
            hub.push_ice_servers()
        events.publish({"type": "uplinks"})

    uplinks.add_listener(changed)


def _announcer(settings: Settings, services: PracticeServices, tls: BoxTls) -> Announcer | None:
    """The staff site's mDNS announcement: on its LAN addresses (not on an uplink's interface),
    when it serves HTTPS there."""
    if not settings.discovery.enabled or tls.lan is None:
        return None
    lan = tls.lan
    addresses = [str(entry.ip) for entry in staff_lan_addresses(settings)]
    if not addresses:
        return None

    def practice_name() -> str | None:
        if services.vault.sealed:
            return None
        profile = services.office.profile()
        return profile.name if profile else None

    return Announcer(hostname=settings.tls.hostname, addresses=addresses,
                     port=settings.web.staff_port, version=__version__,
                     ca_fingerprint=lambda: lan.ca.fingerprint, practice_name=practice_name,
                     renamed=lan.rename)


def _signaling_hub(services: PracticeServices, relay: TurnRelay) -> SignalingHub:
    """The hub with the practice's rules: admitting and ending go through the appointment book
    (it enforces R2, O3 and R3 and tells its state listeners: the dashboard's event stream)."""
    calls = services.calls

    def ice_servers(room_id: str, member: Member) -> list[dict[str, Any]]:
        return relay.ice_servers_for(member.role, (room_id, relay.opaque_id(member.key)))

    def on_admit(room_id: str, doctor: str, member: Member) -> list[dict[str, Any]]:
        calls.admit_member(doctor, room_id, member.key)  # the book checks the doctor (O3, R3)
        return ice_servers(room_id, member)

    def on_end(room_id: str, doctor: str) -> None:
        calls.end(doctor, room_id)

    def on_remove(room_id: str, doctor: str, member: Member) -> None:
        calls.remove_from_call(doctor, room_id, member.key)

    return SignalingHub(on_admit=on_admit, on_end=on_end, on_remove=on_remove,
                        ice_servers=ice_servers,
                        ice_policy=lambda member: relay.ice_policy_for(member.role))


async def async_serve(
    settings: Settings, services: PracticeServices, *, ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None, config_path: Path | None = None,
) -> None:
    """Run the box until ``stop`` is set (or SIGTERM/SIGINT); shut down in reverse order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    await services.async_start()
    try:
        await async_run_sites(build_box(settings, services, config_path=config_path),
                              ready=ready, stop=stop)
    finally:
        await services.async_stop()
