"""The signaling hub: one room per appointment, participants with several sockets, reliable relay.

Transport-agnostic (docs/signaling.md): an adapter authenticates a socket, hands the hub a
``send`` and a ``close`` callable for it (:meth:`SignalingHub.open`), feeds it every frame
(:meth:`SignalingHub.receive`), reports its end (:meth:`SignalingHub.closed`) and calls
:meth:`SignalingHub.async_tick` every 250 ms. ``send`` must not block: it queues the frame.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from appliance.errors import SprechzimmerError
from appliance.practice.appointments import MAX_CALL_PARTICIPANTS
from appliance.rtc.messages import (
    ROLES,
    Ack,
    Admit,
    Admitted,
    ClientMessage,
    End,
    Ended,
    Error,
    Hello,
    Leave,
    ParticipantInfo,
    Ping,
    Pong,
    Remove,
    Restart,
    Room,
    SignalingError,
    SignalTo,
    Welcome,
    data_json,
    error_frame,
    parse_client,
    serialize,
    signal_frame,
)

_LOGGER = logging.getLogger(__name__)

#: how often pages ping (told in ``welcome``)
HEARTBEAT_MS: Final = 500
#: a socket without any frame for this long is dead (a socket on a dead path never closes)
DEAD_AFTER_S: Final = 2.0
#: a participant without sockets keeps its place (and outbox) this long
GRACE_S: Final = 60.0
#: participants of one call, the doctor included (a place is always kept for the doctor)
MAX_PARTICIPANTS: Final = MAX_CALL_PARTICIPANTS
#: reliable frames held back while an earlier ``seq`` is missing
MAX_AHEAD: Final = 64
#: unacknowledged hub messages per participant before its session is given up
MAX_OUTBOX: Final = 512
DOCTOR: Final = "doctor"
#: the reason of the box's ``restart`` when one of the practice's lines died
UPLINK_RESTART: Final = "uplink"

SendFn = Callable[[str], None]
CloseFn = Callable[[], None]
IceServers = list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Member:
    """Who a socket belongs to, as the adapter authenticated it (never from the client)."""

    #: stable identity within the room, e.g. ``doctor``, ``patient``, ``guest:<id>``
    key: str
    #: ``doctor``, ``patient`` or ``guest``
    role: str
    #: shown to the others in the call (R1: the patient's full name)
    name: str = field(repr=False)
    #: the doctor's staff username, for the domain actions
    username: str | None = None
    #: the domain has already let this member into the call (e.g. the appointment is in_call)
    admitted: bool = False


AdmitFn = Callable[[str, str, Member], IceServers]
EndFn = Callable[[str, str], None]
RemoveFn = Callable[[str, str, Member], None]
IceServersFn = Callable[[str, Member], IceServers]
#: the ICE transport policy for a member: "all", or "relay" (no LAN address leaves the page)
IcePolicyFn = Callable[[Member], str]


class HubSocket:
    """One transport connection as the hub sees it; opaque to the adapter."""

    __slots__ = ("room_id", "member", "_send", "_close", "last_seen", "participant", "closed")

    def __init__(self, room_id: str, member: Member, send: SendFn, close: CloseFn,
                 now: float) -> None:
        self.room_id = room_id
        self.member = member
        self._send = send
        self._close = close
        self.last_seen = now
        self.participant: _Participant | None = None
        self.closed = False


class _Participant:
    """A member in a room: its sockets, its session and both directions' sequence state."""

    def __init__(self, room: _Room, pid: str, member: Member) -> None:
        self.room = room
        self.id = pid
        self.member = member
        self.session: str | None = None
        self.sockets: list[HubSocket] = []
        self.admitted = False
        self.removed = False
        #: last client seq processed in order, and what waits behind a gap
        self.in_seq = 0
        self.held: dict[int, tuple[HubSocket, ClientMessage | SignalingError]] = {}
        self.ack_due = False
        #: hub → client numbering and the unacknowledged messages
        self.out_seq = 0
        self.outbox: deque[tuple[int, str]] = deque()
        self.absent_since: float | None = None
        self.last_view: tuple[str, tuple[ParticipantInfo, ...]] | None = None

    def reset_session(self, session: str | None) -> None:
        """Start both sequences afresh (a new page session)."""
        self.session = session
        self.in_seq = 0
        self.held.clear()
        self.ack_due = False
        self.out_seq = 0
        self.outbox.clear()
        self.last_view = None

    def info(self) -> ParticipantInfo:
        """Own id, role and name (as in ``welcome``)."""
        return ParticipantInfo(id=self.id, role=self.member.role, name=self.member.name)


class _Room:
    """The participants of one appointment."""

    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.participants: dict[str, _Participant] = {}
        self.by_id: dict[str, _Participant] = {}
        self.banned: set[str] = set()
        self.ended = False

    def state(self) -> str:
        """``ended``, ``in_call`` (someone besides the doctor admitted) or ``waiting``."""
        if self.ended:
            return "ended"
        if any(p.admitted and p.member.role != DOCTOR for p in self.participants.values()):
            return "in_call"
        return "waiting"


def _no_ice_servers(room_id: str, member: Member) -> IceServers:
    return []


def _ice_policy_all(member: Member) -> str:
    return "all"


def _no_end(room_id: str, doctor: str) -> None:
    return None


def _no_remove(room_id: str, doctor: str, member: Member) -> None:
    return None


class SignalingHub:
    """Rooms of participants; relays signals reliably and in order; never raises on input."""

    def __init__(
        self,
        *,
        on_admit: AdmitFn | None = None,
        on_end: EndFn | None = None,
        on_remove: RemoveFn | None = None,
        ice_servers: IceServersFn = _no_ice_servers,
        ice_policy: IcePolicyFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        dead_after_s: float = DEAD_AFTER_S,
        grace_s: float = GRACE_S,
        max_participants: int = MAX_PARTICIPANTS,
    ) -> None:
        self._ice_servers = ice_servers
        self._ice_policy = ice_policy or _ice_policy_all
        self._on_admit: AdmitFn = on_admit or (
            lambda room_id, doctor, member: ice_servers(room_id, member)
        )
        self._on_end = on_end or _no_end
        self._on_remove = on_remove or _no_remove
        self._clock = clock
        self._dead_after_s = dead_after_s
        self._grace_s = grace_s
        self._max_participants = max_participants
        self._rooms: dict[str, _Room] = {}
        self._sockets: set[HubSocket] = set()

    # --- the adapter's side -------------------------------------------------------------------

    def open(self, room_id: str, member: Member, send: SendFn, close: CloseFn) -> HubSocket:
        """Register an authenticated socket for ``room_id``; it joins with its ``hello``."""
        sock = HubSocket(room_id, member, send, close, self._clock())
        if member.role not in ROLES:  # R2: e.g. an assistant never joins a call
            self._drop_socket(sock, SignalingError("signal_no_call_role"))
            return sock
        self._sockets.add(sock)
        return sock

    def receive(self, sock: HubSocket, frame: str | bytes) -> None:
        """Handle one frame from ``sock``; bad input is answered with ``error``, never raised."""
        if sock.closed:
            return
        participant = sock.participant
        # an unbound socket stays alive only by joining: pings do not keep it open
        if participant is not None:
            sock.last_seen = self._clock()
        try:
            try:
                message = parse_client(frame)
            except SignalingError as exc:
                if not (exc.consumes and participant is not None and exc.ref is not None):
                    raise
                self._reliable(participant, sock, exc.ref, exc)  # answered in its turn
                return
            self._dispatch(sock, message)
        except SignalingError as exc:
            self._error(sock, exc)
        except Exception:  # noqa: BLE001 - the hub must survive any input and its own bugs
            _LOGGER.exception("signaling frame failed")
            self._error(sock, SignalingError("signal_failed"))

    def closed(self, sock: HubSocket) -> None:
        """The transport of ``sock`` is gone (idempotent)."""
        sock.closed = True
        self._detach(sock)

    async def async_tick(self) -> None:
        """Drop dead sockets, forget participants after their grace, send due acks."""
        now = self._clock()
        for sock in [s for s in self._sockets if now - s.last_seen > self._dead_after_s]:
            _LOGGER.debug("socket in room %s silent for %.1f s: dropped", sock.room_id,
                          now - sock.last_seen)
            self._drop_socket(sock)
        for room in list(self._rooms.values()):
            for participant in list(room.participants.values()):
                if (not participant.sockets and participant.absent_since is not None
                        and now - participant.absent_since > self._grace_s):
                    _LOGGER.info("participant %s of room %s gone after grace", participant.id,
                                 room.id)
                    self._forget(participant)
                elif participant.ack_due:
                    self._flush_ack(participant)

    def keep_places(self, room_id: str, members: list[Member],
                    removed: tuple[str, ...] = ()) -> None:
        """Align the room with the practice's record before a socket joins it.

        ``removed`` — whom the doctor sent out of the running call — is the whole truth: a new
        link or a reopening lets them back in this very room. ``members`` — a running call's
        members — get their places, away for now, if the hub does not know the room: after a
        restart of the process the call goes on peer to peer, and whoever re-attaches first
        must see the others as away (in their grace period), not as gone (a page drops its
        peer connection to someone who left the room).
        """
        room = self._rooms.get(room_id)
        if room is not None:
            room.banned = set(removed)
            return
        if not (members or removed):
            return
        room = _Room(room_id)
        room.banned.update(removed)
        now = self._clock()
        for member in members:
            participant = _Participant(room, self._new_id(room, member.key), member)
            participant.admitted = member.admitted or member.role == DOCTOR
            participant.absent_since = now
            room.participants[member.key] = participant
            room.by_id[participant.id] = participant
        self._rooms[room_id] = room
        _LOGGER.info("room %s taken up again with %d places", room_id, len(members))

    def push_line_failover(self) -> int:
        """A line of the practice died: every call with someone on the internet hears of new
        ICE servers (the healthy lines') and ``restart`` (reason ``uplink``); returns how many
        participants. The box cannot see which line a call's media takes (it never passes the
        box), so every such call is told; a page whose media still flows stays where it is."""
        told = 0
        for room in self._calls_outside():
            self.push_ice_servers(room)
            told += self._restart_all(room, UPLINK_RESTART)
        return told

    def push_ice_servers(self, room: _Room | None = None) -> int:
        """Fresh ICE servers (``admitted``) for every admitted page of ``room``, or of every
        call with someone on the internet (a line came back: the next rebuild may use it);
        nothing is restarted. Returns how many participants."""
        told = 0
        for each in [room] if room is not None else self._calls_outside():
            for participant in each.participants.values():
                if participant.admitted:
                    self._send_admitted(participant,
                                        self._ice_servers(each.id, participant.member))
                    told += 1
        return told

    def _calls_outside(self) -> list[_Room]:
        """Running calls with an admitted patient or guest."""
        return [room for room in self._rooms.values() if not room.ended and any(
            p.admitted and p.member.role != DOCTOR for p in room.participants.values())]

    def close_all(self) -> None:
        """Close every socket and forget every room (shutdown)."""
        for sock in list(self._sockets):
            self._drop_socket(sock)
        for room in self._rooms.values():
            for participant in room.participants.values():
                for sock in list(participant.sockets):
                    self._drop_socket(sock)
        self._rooms.clear()

    # --- introspection (dashboards, tests) ----------------------------------------------------

    def remove_member(self, room_id: str, key: str, *, ban: bool = True) -> bool:
        """Let ``key`` go from outside the call (its link was withdrawn): ``ended`` (``removed``).

        With ``ban`` the key stays out of the room; without, a new link of the same person
        (a reissue) may join again. Whether someone was there.
        """
        room = self._rooms.get(room_id)
        if room is None:
            return False
        if ban:
            room.banned.add(key)
        participant = room.participants.get(key)
        if participant is None:
            return False
        self._send_reliable(participant, lambda seq: serialize(Ended(seq=seq, reason="removed")))
        _LOGGER.info("participant %s let go from room %s", participant.id, room_id)
        self._forget(participant)
        return True

    def room_ids(self) -> list[str]:
        """The rooms that have participants."""
        return list(self._rooms)

    def participants(self, room_id: str) -> list[ParticipantInfo]:
        """Everyone in ``room_id`` with presence and admission."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        return [self._entry(p) for p in room.participants.values()]

    def room_state(self, room_id: str) -> str | None:
        """``waiting``, ``in_call`` or ``ended``; None without a room."""
        room = self._rooms.get(room_id)
        return None if room is None else room.state()

    def has_visitors(self) -> bool:
        """Whether a patient or a guest is in a room that has not ended: waiting, in a call, or
        away for a moment (within their grace)."""
        return any(participant.member.role != DOCTOR
                   for room in self._rooms.values() if not room.ended
                   for participant in room.participants.values())

    @property
    def socket_count(self) -> int:
        """Open sockets, joined or not."""
        return len(self._sockets)

    # --- frames -------------------------------------------------------------------------------

    def _dispatch(self, sock: HubSocket, message: ClientMessage) -> None:
        participant = sock.participant
        if isinstance(message, Ping):
            if participant is not None and participant.ack_due:
                self._flush_ack(participant)
            self._write(sock, serialize(Pong(t=message.t)))
        elif isinstance(message, Hello):
            self._hello(sock, message)
        elif participant is None:
            raise SignalingError("signal_hello_first", ref=getattr(message, "seq", None))
        elif isinstance(message, Ack):
            while participant.outbox and participant.outbox[0][0] <= message.upto:
                participant.outbox.popleft()
        else:
            self._reliable(participant, sock, message.seq, message)

    def _reliable(self, participant: _Participant, sock: HubSocket, seq: int,
                  item: ClientMessage | SignalingError) -> None:
        """Apply reliable frames exactly once and in order; hold what comes early."""
        participant.ack_due = True
        if seq <= participant.in_seq:
            return  # a duplicate (sent on several sockets, or replayed)
        if seq != participant.in_seq + 1:
            if seq - participant.in_seq > MAX_AHEAD:
                raise SignalingError("signal_bad_seq", ref=seq)
            participant.held.setdefault(seq, (sock, item))
            return
        session = participant.session
        origin: HubSocket = sock
        while True:
            participant.in_seq += 1
            self._apply(participant, origin, item)
            if participant.removed or participant.session != session:
                return
            waiting = participant.held.pop(participant.in_seq + 1, None)
            if waiting is None:
                return
            origin, item = waiting

    def _apply(self, participant: _Participant, sock: HubSocket,
               item: ClientMessage | SignalingError) -> None:
        if isinstance(item, SignalingError):
            self._error(sock, item)
            return
        seq = getattr(item, "seq", None)
        try:
            if isinstance(item, SignalTo):
                self._signal(participant, item)
            elif isinstance(item, Admit):
                self._admit(participant, item)
            elif isinstance(item, Remove):
                self._remove(participant, item)
            elif isinstance(item, End):
                self._end(participant)
            elif isinstance(item, Restart):
                self._require_doctor(participant)
                if participant.room.ended:
                    raise SignalingError("signal_call_ended")
                self._restart_all(participant.room, DOCTOR)
            elif isinstance(item, Leave):
                room = participant.room
                self._forget(participant)
                _LOGGER.info("participant %s left room %s", participant.id, room.id)
        except SignalingError as exc:
            exc.ref = seq
            self._error(sock, exc)
        except SprechzimmerError as exc:  # the domain said no (R2, R3, O3, a closed appointment)
            self._write(sock, _domain_error(exc, seq))
        except Exception:  # noqa: BLE001 - a failing callback must not stop the hub
            _LOGGER.exception("signaling action %s failed", item.TYPE)
            self._error(sock, SignalingError("signal_failed", ref=seq))

    # --- joining ------------------------------------------------------------------------------

    def _hello(self, sock: HubSocket, hello: Hello) -> None:
        if sock.participant is not None:
            raise SignalingError("signal_already_joined")
        member = sock.member
        room = self._rooms.get(sock.room_id)
        if room is not None and member.key in room.banned:
            self._drop_socket(sock, SignalingError("signal_removed"))
            return
        participant = room.participants.get(member.key) if room is not None else None
        resumed = participant is not None and participant.session == hello.session
        if resumed:
            assert participant is not None
            if hello.received > participant.out_seq:
                self._drop_socket(sock, SignalingError("signal_session_unknown"))
                return
        elif hello.received > 0:
            # the page remembers messages of a session the hub does not know (e.g. after a
            # restart of the box): it must start a new session rather than drop fresh frames
            self._drop_socket(sock, SignalingError("signal_session_unknown"))
            return
        else:
            if participant is None:
                if room is None:
                    room = _Room(sock.room_id)
                if member.role != DOCTOR and sum(
                    p.member.role != DOCTOR for p in room.participants.values()
                ) >= self._max_participants - 1:
                    self._drop_socket(sock, SignalingError(
                        "signal_room_full", limit=self._max_participants))
                    return
                self._rooms[room.id] = room
                participant = _Participant(room, self._new_id(room, member.key), member)
                room.participants[member.key] = participant
                room.by_id[participant.id] = participant
                _LOGGER.info("participant %s (%s) joined room %s", participant.id, member.role,
                             room.id)
            else:
                for old in list(participant.sockets):
                    self._drop_socket(old, SignalingError("signal_replaced"))
            participant.reset_session(hello.session)
        assert room is not None and participant is not None
        participant.member = member
        if member.role != DOCTOR and room.ended:
            room.ended = False  # the domain let them in again (the appointment was reopened)
        newly_admitted = not participant.admitted and (member.role == DOCTOR or member.admitted)
        participant.admitted = participant.admitted or newly_admitted
        participant.sockets.append(sock)
        participant.absent_since = None
        sock.participant = participant
        sock.last_seen = self._clock()
        self._write(sock, serialize(Welcome(
            participant=participant.info(), received=participant.in_seq,
            heartbeat_ms=HEARTBEAT_MS, max_participants=self._max_participants)))
        if resumed:
            while participant.outbox and participant.outbox[0][0] <= hello.received:
                participant.outbox.popleft()
            for _, frame in list(participant.outbox):
                self._write(sock, frame)
        elif participant.admitted:
            self._send_admitted(participant, self._ice_servers(room.id, member))
        self._broadcast_room(room)

    def _send_admitted(self, participant: _Participant, servers: IceServers) -> None:
        policy = self._ice_policy(participant.member)
        self._send_reliable(participant, lambda seq: serialize(
            Admitted(seq=seq, ice_servers=tuple(servers), ice_policy=policy)))

    def _new_id(self, room: _Room, key: str) -> str:
        """The same id for the same member of a room, also in a hub started anew.

        After a restart of the web process the pages come back to a new hub: with the ids they
        knew, their peer connections (P2P, never through the box) simply go on.
        """
        pid = "p-" + hashlib.sha256(f"{room.id}\0{key}".encode()).hexdigest()[:12]
        while pid in room.by_id:  # never in practice; ids must stay unique regardless
            pid = f"p-{secrets.token_hex(6)}"
        return pid

    # --- actions ------------------------------------------------------------------------------

    def _require_doctor(self, participant: _Participant) -> None:
        if participant.member.role != DOCTOR:  # O3: only the doctor conducts the call
            raise SignalingError("signal_not_allowed")

    def _other(self, participant: _Participant, pid: str) -> _Participant:
        other = participant.room.by_id.get(pid)
        if other is None or other is participant:
            raise SignalingError("signal_unknown_participant")
        return other

    def _signal(self, sender: _Participant, message: SignalTo) -> None:
        room = sender.room
        if room.ended:
            raise SignalingError("signal_call_ended")
        if not sender.admitted:
            raise SignalingError("signal_not_admitted")
        target = self._other(sender, message.to)
        if not target.admitted:
            raise SignalingError("signal_unknown_participant")
        text = data_json(message)
        sender_id = sender.id
        self._send_reliable(target, lambda seq: signal_frame(seq, sender_id, text))

    def _admit(self, doctor: _Participant, message: Admit) -> None:
        self._require_doctor(doctor)
        room = doctor.room
        if room.ended:
            raise SignalingError("signal_call_ended")
        target = self._other(doctor, message.participant)
        if target.member.role == DOCTOR:
            raise SignalingError("signal_not_allowed")
        if target.admitted:
            servers = self._ice_servers(room.id, target.member)
        else:
            servers = self._on_admit(room.id, doctor.member.username or "", target.member)
        target.admitted = True
        _LOGGER.info("participant %s admitted to room %s", target.id, room.id)
        self._send_admitted(target, servers)
        self._broadcast_room(room)

    def _remove(self, doctor: _Participant, message: Remove) -> None:
        self._require_doctor(doctor)
        target = self._other(doctor, message.participant)
        if target.member.role == DOCTOR:
            raise SignalingError("signal_not_allowed")
        self._on_remove(doctor.room.id, doctor.member.username or "", target.member)
        self._send_reliable(target, lambda seq: serialize(Ended(seq=seq, reason="removed")))
        doctor.room.banned.add(target.member.key)
        _LOGGER.info("participant %s removed from room %s", target.id, doctor.room.id)
        self._forget(target)

    def _end(self, doctor: _Participant) -> None:
        self._require_doctor(doctor)
        room = doctor.room
        self._on_end(room.id, doctor.member.username or "")
        room.ended = True
        _LOGGER.info("call in room %s ended", room.id)
        for participant in list(room.participants.values()):
            self._send_reliable(participant, lambda seq: serialize(
                Ended(seq=seq, reason="ended")))
            if participant.member.role != DOCTOR:
                self._forget(participant, broadcast=False)
        self._broadcast_room(room)

    def _restart_all(self, room: _Room, reason: str) -> int:
        admitted = [p for p in room.participants.values() if p.admitted]
        for participant in admitted:
            self._send_reliable(participant, lambda seq: serialize(
                Restart(seq=seq, reason=reason)))
        return len(admitted)

    # --- delivery -----------------------------------------------------------------------------

    def _send_reliable(self, participant: _Participant, build: Callable[[int], str]) -> None:
        """Number, keep until acknowledged, and send on every socket of ``participant``."""
        participant.out_seq += 1
        frame = build(participant.out_seq)
        participant.outbox.append((participant.out_seq, frame))
        if len(participant.outbox) > MAX_OUTBOX:
            self._overflow(participant)
            return
        for sock in list(participant.sockets):
            self._write(sock, frame)

    def _broadcast_room(self, room: _Room) -> None:
        """Send each participant its view of the room, when it changed."""
        state = room.state()
        for participant in list(room.participants.values()):
            view = (state, tuple(self._entry(p) for p in room.participants.values()
                                 if _visible(participant, p)))
            if view == participant.last_view:
                continue
            participant.last_view = view
            self._send_reliable(participant, lambda seq, v=view: serialize(
                Room(seq=seq, state=v[0], participants=v[1])))

    def _entry(self, participant: _Participant) -> ParticipantInfo:
        return ParticipantInfo(id=participant.id, role=participant.member.role,
                               name=participant.member.name,
                               present=bool(participant.sockets), admitted=participant.admitted)

    def _flush_ack(self, participant: _Participant) -> None:
        participant.ack_due = False
        frame = serialize(Ack(upto=participant.in_seq))
        for sock in list(participant.sockets):
            self._write(sock, frame)

    def _write(self, sock: HubSocket, frame: str) -> None:
        if sock.closed:
            return
        try:
            sock._send(frame)
        except Exception:  # noqa: BLE001 - a broken transport is just a dead socket
            _LOGGER.debug("send failed in room %s; socket dropped", sock.room_id)
            self._drop_socket(sock)

    def _error(self, sock: HubSocket, error: SignalingError) -> None:
        self._write(sock, error_frame(error))

    # --- endings ------------------------------------------------------------------------------

    def _drop_socket(self, sock: HubSocket, error: SignalingError | None = None) -> None:
        """Close ``sock`` from the hub's side (after ``error``, if given)."""
        if sock.closed:
            return
        if error is not None:
            self._error(sock, error)
        sock.closed = True
        try:
            sock._close()
        except Exception:  # noqa: BLE001
            _LOGGER.debug("closing a socket failed", exc_info=True)
        self._detach(sock)

    def _detach(self, sock: HubSocket) -> None:
        self._sockets.discard(sock)
        participant, sock.participant = sock.participant, None
        if participant is None or sock not in participant.sockets:
            return
        participant.sockets.remove(sock)
        if not participant.sockets and not participant.removed:
            participant.absent_since = self._clock()
            self._broadcast_room(participant.room)

    def _forget(self, participant: _Participant, *, broadcast: bool = True) -> None:
        """Take ``participant`` out of its room at once (left, removed, ended, grace over)."""
        room = participant.room
        participant.removed = True
        room.participants.pop(participant.member.key, None)
        room.by_id.pop(participant.id, None)
        for sock in list(participant.sockets):
            self._drop_socket(sock)
        participant.sockets.clear()
        if room.participants:
            if broadcast:
                self._broadcast_room(room)
        elif self._rooms.get(room.id) is room:
            del self._rooms[room.id]

    def _overflow(self, participant: _Participant) -> None:
        """The page stopped acknowledging: give its session up (a new session rejoins)."""
        _LOGGER.warning("participant %s of room %s acknowledged nothing for %d messages; "
                        "session reset", participant.id, participant.room.id, MAX_OUTBOX)
        participant.reset_session(None)
        for sock in list(participant.sockets):
            self._drop_socket(sock, SignalingError("signal_backlog"))


def _visible(viewer: _Participant, other: _Participant) -> bool:
    """The doctor sees everyone; others see the doctor, themselves and, once in, the call."""
    if viewer is other or viewer.member.role == DOCTOR or other.member.role == DOCTOR:
        return True
    return viewer.admitted and other.admitted


def _domain_error(exc: SprechzimmerError, ref: int | None) -> str:
    """The ``error`` frame for a refusal of the practice domain (its own code and message)."""
    return serialize(Error(code=exc.code, message=exc.message("de"), ref=ref))
