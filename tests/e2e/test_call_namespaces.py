"""The video call in real Chromium across TURN.md's practice LAN, built from network namespaces.

The box (web process) and coturn run in the box namespace with our generated configuration and
firewall rule (design C); the doctor's Chromium runs on the doctor PC in the LAN and opens the
staff site on the box's LAN address; the patient's Chromium runs on the internet side and opens
the public site through the router's forward of the public address (no hairpin NAT). See
``netlab.py``. The flow through the pages is the one of ``test_call.py``; its helpers are reused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rtc.turn_fixtures import DOCTOR as DOCTOR_PC
from tests.rtc.turn_fixtures import PATIENT as PATIENT_ADDRESS
from tests.rtc.turn_fixtures import WAN_PUBLIC

from .netlab import PUBLIC_URL, STAFF_URL, CallLab, PageContext, call_lab, missing_tools
from .test_call import (
    CONNECTION_IDS,
    DEBUG_HOOK,
    DOCTOR,
    PATIENT,
    TIMEOUT_MS,
    _frames,
    _practice,
    _until,
    _until_frames,
    _watch,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or ""),
]
async_api = pytest.importorskip("playwright.async_api")
expect = async_api.expect

#: the selected ICE candidate pair of every connected RTCPeerConnection of the page
SELECTED_PAIRS = """async () => {
  const pairs = [];
  for (const pc of (window.__sz && window.__sz.connections) || []) {
    if (pc.connectionState !== 'connected') continue;
    const report = await pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId);
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    if (!pair) continue;
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    pairs.push({local: local.candidateType, localAddress: local.address,
                localProtocol: local.protocol, remote: remote.candidateType,
                remoteAddress: remote.address});
  }
  return pairs;
}"""

#: the page's signaling sockets, marked so that a new one can be told from the old one
MARK_SOCKETS = """() => {
  const links = window.__sz.signaling.links;
  for (const link of links) if (link.socket) link.socket.szBeforeCut = true;
  return links.filter((link) => link.socket && link.ready).length;
}"""
SOCKETS_REPLACED = """() => window.__sz.signaling.links.every(
  (link) => link.socket && link.ready && !link.socket.szBeforeCut)"""


def _pair(pairs: list[dict[str, str]]) -> str:
    return ", ".join(f"{p['local']} {p['localAddress']} ↔ {p['remote']} {p['remoteAddress']}"
                     for p in pairs)


@pytest.fixture
def restricted_lab(tmp_path: Path) -> Iterator[CallLab]:
    """The lab with the patient behind a firewall that lets only the web page and TURN out."""
    with call_lab(tmp_path, restrict_patient=True) as lab:
        yield lab


@pytest.fixture(params=["direct", "relay"])
def any_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallLab]:
    """The lab with an ordinary patient network (ICE finds the direct path through the
    practice's NAT), and with the restrictive one (relay only)."""
    with call_lab(tmp_path, restrict_patient=request.param == "relay") as lab:
        yield lab


@pytest.fixture
async def playwright() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as running:
        running.selectors.set_test_id_attribute("data-test")
        yield running


async def _browsers(playwright: Any, lab: CallLab) -> tuple[Any, Any]:
    """Chromium on the doctor PC and Chromium on the patient's side of the internet."""
    doctor = await playwright.chromium.launch(**lab.launch_options("doctor"))
    try:
        patient = await playwright.chromium.launch(**lab.launch_options("inet"))
    except BaseException:
        await doctor.close()
        raise
    return doctor, patient


async def _into_call(lab: CallLab, doctor_browser: Any, patient_browser: Any,
                     errors: list[str], notes: dict[str, Any] | None = None, *,
                     device_check: bool = False) -> tuple[Any, Any]:
    """Practice set up, patient in the waiting room, admitted, video decoded both ways; returns
    (doctor page, patient page). As ``test_call._into_call``, but each side in its own browser.
    ``notes`` gets the ``appointment`` (with link and code) and ``admit_to_video_s``: from the
    doctor's click to video on both sides. With ``device_check`` the patient runs the device
    check while waiting (a real connection to the box's echo peer)."""
    expect.set_options(timeout=TIMEOUT_MS)
    staff = await doctor_browser.new_context(locale="de-DE",
                                             viewport={"width": 1280, "height": 860})
    patient = await patient_browser.new_context(
        locale="de-DE", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    for context in (staff, patient):
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(DEBUG_HOOK)

    doctor = await staff.new_page()
    _watch(doctor, errors)
    await doctor.goto(STAFF_URL)
    assert await doctor.evaluate("window.isSecureContext"), "the staff site is no secure context"
    appt = await _practice(PageContext(doctor), lab.box, list(lab.public_urls))
    if notes is not None:
        notes["appointment"] = appt
    assert appt["link"].startswith(f"{PUBLIC_URL}/v/"), appt["link"]
    await doctor.goto(STAFF_URL)
    row = doctor.get_by_test_id("appointment-row").filter(has_text=PATIENT)
    await expect(row.get_by_test_id("appointment-state")).to_have_text("geplant")
    await expect(doctor.get_by_test_id("live-status")).to_have_text("Live")

    visit = await patient.new_page()
    _watch(visit, errors)
    await visit.goto(appt["link"])
    assert await visit.evaluate("window.isSecureContext"), "the public site is no secure context"
    await visit.get_by_label("Bitte geben Sie Ihren Zugangscode ein").fill(appt["access_code"])
    await visit.get_by_role("button", name="Weiter").click()
    await visit.get_by_label("Ihr vollständiger Name, so wie die Praxis ihn kennt").fill(PATIENT)
    await visit.get_by_label("Ich willige in die Durchführung der Videosprechstunde ein").check()
    await visit.get_by_label("Ich bin in einem geschlossenen Raum").check()
    await visit.get_by_role("button", name="Ins Wartezimmer").click()
    await expect(visit.get_by_role("heading", name="Sie sind im Wartezimmer.")).to_be_visible()
    await expect(visit.get_by_test_id("waiting-rules")).to_contain_text("nimmt etwas auf")
    await expect(row.get_by_test_id("appointment-state")).to_have_text("wartet")
    if device_check:
        await visit.get_by_test_id("start-check").click()
        result = await _until(visit, "window.__sz.deviceCheck", timeout_s=30)
        assert result["verdict"]["level"] != "bad", result  # the box's relay reached
        await visit.get_by_test_id("check-done").click()

    await row.get_by_role("button", name="Gespräch beginnen").click()
    await expect(doctor.get_by_test_id("device-check")).to_be_visible()
    await doctor.get_by_test_id("check-done").click()
    await expect(doctor.get_by_test_id("doctor-rules")).to_contain_text("Niemand nimmt etwas auf")
    participant = doctor.get_by_test_id("call-participant").filter(has_text=PATIENT)
    admitted = time.monotonic()
    await participant.get_by_role("button", name=f"{PATIENT} hereinholen").click()

    await expect(doctor.get_by_test_id("call-view")).to_be_visible()
    await expect(visit.get_by_test_id("call-view")).to_be_visible()
    assert await _until_frames(doctor, timeout_s=20) > 0
    assert await _until_frames(visit, timeout_s=20) > 0
    if notes is not None:
        notes["admit_to_video_s"] = time.monotonic() - admitted
    await expect(visit.get_by_test_id("call-rules")).to_contain_text("Niemand nimmt etwas auf")
    await expect(doctor.get_by_test_id("call-status")).to_contain_text(f"Verbunden mit {PATIENT}")
    await expect(visit.get_by_test_id("call-status")).to_contain_text(f"Verbunden mit {DOCTOR[1]}")
    return doctor, visit


async def test_relay_only_patient_reaches_doctor_pc(
    restricted_lab: CallLab, playwright: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """R4 (peer-to-peer, the box's relay only as the fallback, still DTLS-SRTP end to end), R7
    (the rules on both sides before the call), R1 (link and code, no account).

    Issue part: "in TURN.md's lab topology, a relay-only patient reaches the doctor PC with media
    both ways in real Chromium". The patient's own network lets only the web page and UDP to the
    practice's TURN port through, so no direct path exists; the box hands the patient
    ``turn:<public address>`` and the doctor ``turn:<box LAN address>`` after admission, and
    coturn (design C) relays relay ↔ relay inside the box although the router has no hairpin NAT.
    Without the box's TURN servers (or with the public address for the doctor) no frame arrives.
    """
    lab = restricted_lab
    errors: list[str] = []
    doctor_browser, patient_browser = await _browsers(playwright, lab)
    try:
        doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors)
        patient_pairs = await _until(visit, SELECTED_PAIRS)
        doctor_pairs = await _until(doctor, SELECTED_PAIRS)
        # the patient's side of the path is the box's relay, announced with the public address
        assert [(p["local"], p["localAddress"]) for p in patient_pairs] == [
            ("relay", WAN_PUBLIC)], patient_pairs
        assert [p["remote"] for p in doctor_pairs] == ["relay"], doctor_pairs
        # media keeps flowing both ways over the relay
        await _until_frames(visit, await _frames(visit))
        await _until_frames(doctor, await _frames(doctor))
        assert not errors, errors
    finally:
        await patient_browser.close()
        await doctor_browser.close()
    with capsys.disabled():
        print(f"\n  patient {_pair(patient_pairs)}, doctor {_pair(doctor_pairs)}")


#: every address the page learnt from the other side (candidates in the session descriptions)
REMOTE_CANDIDATES = """async () => {
  const found = [];
  for (const pc of (window.__sz && window.__sz.connections) || []) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'remote-candidate') found.push([s.candidateType, s.address]);
    });
  }
  return found;
}"""


@pytest.mark.parametrize("relay_only", [False, True], ids=["doctor all", "doctor relay-only"])
async def test_doctor_can_hide_the_pc_addresses(
    tmp_path: Path, playwright: Any, relay_only: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """R9 (no more of the practice's network than a call needs): with ``[turn]
    doctor_relay_only`` the doctor's page offers only the box's relay, so no address of the
    doctor PC reaches the patient's browser; the call still connects (patient direct). Without
    it the patient learns the PC's LAN address, which is what the setting is for. Prints the
    time from admission to video on both sides, the setting's cost (docs/turn.md)."""
    errors: list[str] = []
    timings: dict[str, Any] = {}
    with call_lab(tmp_path, restrict_patient=False, doctor_relay_only=relay_only) as lab:
        doctor_browser, patient_browser = await _browsers(playwright, lab)
        try:
            doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors,
                                             timings)
            learnt = await _until(visit, REMOTE_CANDIDATES)
            doctor_pairs = await _until(doctor, SELECTED_PAIRS)
            assert not errors, errors
        finally:
            await patient_browser.close()
            await doctor_browser.close()
    addresses = {address for _, address in learnt}
    if relay_only:
        assert {kind for kind, _ in learnt} <= {"relay", "prflx"}, learnt
        assert DOCTOR_PC not in addresses, learnt
        assert [p["local"] for p in doctor_pairs] == ["relay"], doctor_pairs
    else:
        assert DOCTOR_PC in addresses, learnt  # the LAN address the setting hides
    with capsys.disabled():
        print(f"\n  doctor {'relay-only' if relay_only else 'all'}: admitted -> video both ways "
              f"{timings['admit_to_video_s']:.2f} s; doctor {_pair(doctor_pairs)}")


#: what the patient types into the chat: health information, the most private data there is
CHAT_TEXT = "Mein Knie schmerzt seit Dienstag"


async def test_log_names_nobody(
    tmp_path: Path, playwright: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """R8 (metadata only for running the service), R9. Issue 8: a whole day in Chromium across
    the lab — onboarding, a patient with a recognisable name, link and access code, check-in,
    the waiting room with the device check (the box's aiortc echo peer, whose aioice logs
    candidate pairs at INFO), the call, a chat message — and afterwards the log and every file the
    box wrote outside the vault is searched for every recognisable value: the patient's and the
    doctor's names, the login name, the access code, the link token, the chat text and the
    patient's address. Zero hits — in the vault's files too (defect 3: their header named the
    staff's login names; the doctor's has a dot, issue 9 defect 5)."""
    errors: list[str] = []
    notes: dict[str, Any] = {}
    with call_lab(tmp_path, restrict_patient=False) as lab:
        doctor_browser, patient_browser = await _browsers(playwright, lab)
        try:
            doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors, notes,
                                             device_check=True)
            await visit.get_by_test_id("toggle-chat").click()
            await visit.get_by_test_id("chat-input").fill(CHAT_TEXT)
            await visit.get_by_test_id("chat-send").click()
            await expect(doctor.get_by_test_id("chat-log")).to_contain_text(CHAT_TEXT)
            assert not errors, errors
        finally:
            await patient_browser.close()
            await doctor_browser.close()
        lab.box.stop()  # everything it would write is written
        appt = notes["appointment"]
        secrets = {
            "patient's name": PATIENT, "doctor's name": DOCTOR[1], "login name": DOCTOR[0],
            "access code": appt["access_code"],
            "access code as typed": appt["access_code"].replace("-", ""),
            "link token": appt["link"].rsplit("/", 1)[1], "chat text": CHAT_TEXT,
            "patient's address": PATIENT_ADDRESS,
        }
        box_dir = lab.box.log.parent
        written = [path for path in box_dir.rglob("*") if path.is_file()]
        assert lab.box.log in written and len(lab.box.log.read_text("utf-8")) > 0
        assert any(path.name == "snapshot" for path in written)
        hits = [f"{what} in {path.relative_to(box_dir)}" for path in written
                for what, value in secrets.items()
                if value.lower().encode() in path.read_bytes().lower()]
        # coturn's own log holds client addresses (its packaging, issue 14, decides on it) and
        # the TURN usernames: those carry no login name
        turn_files = [path for path in (lab.directory / "coturn").rglob("*") if path.is_file()]
        hits += [f"login name in coturn's {path.name}" for path in turn_files
                 if DOCTOR[0].encode() in path.read_bytes().lower()]
    assert hits == [], hits
    with capsys.disabled():
        print(f"\n  searched {len(written)} files ({', '.join(p.name for p in written)}) for "
              f"{len(secrets)} values: no hit")


async def test_call_recovers_after_patient_path_is_cut(
    any_lab: CallLab, playwright: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """R6 (reconnect on failure), R4 (media browser ↔ browser again afterwards).

    Issue part: "block the patient's path for a few seconds mid-call and assert frames are
    decoded again on both sides". The router silently drops everything between the internet
    (the patient) and the practice for 4 s — media and both signaling sockets die without a
    word. The doctor's media watchdog builds a new RTCPeerConnection (a higher connection id),
    the patient's signaling finds its dead socket by heartbeat and reconnects, the offer arrives
    by replay, and both sides decode video again on the new connection. Once with the direct
    path (through the practice's NAT), once with the patient relay-only as in the first test.
    """
    lab = any_lab
    errors: list[str] = []
    doctor_browser, patient_browser = await _browsers(playwright, lab)
    try:
        doctor, visit = await _into_call(lab, doctor_browser, patient_browser, errors)
        before = await _until(doctor, SELECTED_PAIRS)
        relayed = [p["remote"] == "relay" for p in before]
        assert relayed == [lab.patient_restricted], before  # the path this variant is about
        old_ids = {cid for cid, _ in await doctor.evaluate(CONNECTION_IDS)}
        assert old_ids, "no connection before the cut"

        assert await visit.evaluate(MARK_SOCKETS) > 0
        lab.cut_patient_uplink()
        try:
            await doctor.wait_for_timeout(4000)
        finally:
            dropped = lab.restore_patient_uplink()
            restored = time.monotonic()
        assert dropped > 0, "the cut dropped nothing: the call did not use the uplink"

        new_connection = f"""() => [...window.__sz.call.peers.values()].some(
            (p) => p.current && p.current.id > {max(old_ids)}
                   && p.current.pc.connectionState === 'connected')"""
        await _until(doctor, new_connection, timeout_s=25)
        await _until(visit, new_connection, timeout_s=10)
        recovered_s = time.monotonic() - restored  # reported, not asserted
        # decoding goes on on both sides, on the new connection only (the old one is closed)
        await _until_frames(doctor, 0)
        await _until_frames(visit, 0)
        await _until_frames(doctor, await _frames(doctor))
        await _until_frames(visit, await _frames(visit))
        for page in (doctor, visit):
            ids = await page.evaluate(CONNECTION_IDS)
            assert len(ids) == 1 and ids[0][0] > max(old_ids), ids
        # the patient's page gave up its silent socket (heartbeat) and signals over a new one
        await _until(visit, SOCKETS_REPLACED, timeout_s=10)
        after = await _until(doctor, SELECTED_PAIRS)
        await expect(visit.get_by_test_id("call-status")).to_contain_text(
            f"Verbunden mit {DOCTOR[1]}")
        assert not errors, errors
    finally:
        await patient_browser.close()
        await doctor_browser.close()
    with capsys.disabled():
        print(f"\n  path before {_pair(before)}, after {_pair(after)}; {dropped} packets dropped;"
              f" new connection {recovered_s:.1f} s after the line came back")
