"""The practice's internet lines, watched: a STUN binding through each line every few seconds.

Each line (``[[turn.uplinks]]``) is probed from the box's LAN address for it (the line's router
forwards what comes from there; the box answers by source routing, docs/uplinks.md) against its
``stun_target``, a STUN server on the internet, or, without one, against the box's own relay by
the line's public address (the router's NAT loopback). An answer from an external target must
name the line's public address (XOR-MAPPED-ADDRESS): one naming another address came back
through another line, and says nothing about this one.

A line's state has hysteresis, so one lost packet flaps nothing:

- ``unknown`` until the first answer (a line never reached is not a dead line: patients keep it);
- ``down`` after :data:`DOWN_AFTER` misses in a row (a miss is followed by quick confirmation
  probes, so a dead line is down within :func:`down_within_s`);
- ``up`` again after :data:`UP_AFTER` answers in a row (the outage's misses leave the loss
  window then);
- ``degraded`` while, over the last :data:`WINDOW` probes, :data:`DEGRADED_LOSS` or more are lost
  or the median round trip reaches :data:`DEGRADED_RTT_MS`; ``up`` again only below half of both.

The history keeps, per line and minute, probes sent and answered, the round trips' sum and the
worst state: :data:`HISTORY_MINUTES` minutes (24 h), never more, and nothing personal (the box's
own addresses and its probe targets only). It is written to a file (``uplinks.json`` in the
runtime directory) once a minute and on every change, for the status page across a restart and
for ``sprechzimmer uplinks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from aioice import stun

from appliance.config import TurnUplink

_LOGGER = logging.getLogger(__name__)

#: seconds between probes of a line in steady state, and the share of it left to chance
INTERVAL_S: Final = 2.0
JITTER: Final = 0.25
#: how long a probe waits for its answer
TIMEOUT_S: Final = 0.8
#: seconds between probes while a line is down (to notice its return)
DOWN_INTERVAL_S: Final = 1.0
DOWN_AFTER: Final = 3
UP_AFTER: Final = 3
#: probes judged for "degraded", and the thresholds
WINDOW: Final = 20
DEGRADED_LOSS: Final = 0.15
DEGRADED_RTT_MS: Final = 250.0
#: 24 h of minutes per line
HISTORY_MINUTES: Final = 24 * 60
HISTORY_FILE: Final = "uplinks.json"
#: the file's own format; a file of another one is read as no history
FILE_FORMAT: Final = 1


def down_within_s(interval_s: float = INTERVAL_S, timeout_s: float = TIMEOUT_S) -> float:
    """The longest a dead line stays up: the wait for the next probe, then the misses."""
    return interval_s * (1 + JITTER) + DOWN_AFTER * timeout_s


class LineState(StrEnum):
    """How a line stands."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


#: worst first: a minute shows the worst state it saw
_SEVERITY: Final = {LineState.UNKNOWN: 0, LineState.UP: 1, LineState.DEGRADED: 2,
                    LineState.DOWN: 3}


class Fault(StrEnum):
    """Why the last probe of a line got no (usable) answer; ``""`` = none."""

    NONE = ""
    NO_ANSWER = "no_answer"
    #: the answer named another public address: it came back through another line
    OTHER_LINE = "other_line"
    #: the box has no such LAN address (or interface): the settings do not fit the box
    NO_ADDRESS = "no_address"
    #: the STUN target's name did not resolve
    NO_TARGET = "no_target"


@dataclass
class Minute:
    """One minute of one line: probes sent and answered, their round trips, the worst state."""

    start: int
    sent: int = 0
    answered: int = 0
    rtt_ms_sum: float = 0.0
    worst: LineState = LineState.UNKNOWN

    @property
    def loss(self) -> float:
        """The share of probes lost in this minute (0 when none was sent)."""
        return 1 - self.answered / self.sent if self.sent else 0.0

    @property
    def rtt_ms(self) -> float | None:
        """The mean round trip of the answered probes."""
        return self.rtt_ms_sum / self.answered if self.answered else None

    def to_json(self) -> list[Any]:
        return [self.start, self.sent, self.answered, round(self.rtt_ms_sum, 1), self.worst.value]

    @classmethod
    def from_json(cls, raw: Any) -> Minute:
        start, sent, answered, rtt_ms_sum, worst = raw
        return cls(start=int(start), sent=int(sent), answered=int(answered),
                   rtt_ms_sum=float(rtt_ms_sum), worst=LineState(worst))


@dataclass(frozen=True, kw_only=True)
class LineStatus:
    """One line as the status page, the dashboard and ``sprechzimmer uplinks`` show it."""

    name: str
    public_host: str
    public_address: str
    lan_address: str
    #: what the box probes: "host:port"
    target: str
    state: LineState
    #: since when (Unix time) the line is in ``state``; None: since the box started
    since: float | None
    #: the median round trip of the last answers, and the share lost of the last probes
    rtt_ms: float | None
    loss: float
    fault: Fault
    #: when the line last answered (Unix time), None: never
    last_answer: float | None
    #: probed by its own public address (no ``stun_target``): the probe needs the router's NAT
    #: loopback, so a line without answers may be a router without it
    by_loopback: bool = False
    history: tuple[Minute, ...] = field(default=(), repr=False)

    @property
    def healthy(self) -> bool:
        """Whether patients get TURN through this line: all but a line known to be down."""
        return self.state is not LineState.DOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "public_host": self.public_host,
            "public_address": self.public_address, "lan_address": self.lan_address,
            "target": self.target, "state": self.state.value, "since": self.since,
            "rtt_ms": self.rtt_ms, "loss": self.loss, "fault": self.fault.value,
            "last_answer": self.last_answer, "by_loopback": self.by_loopback,
            "history": [minute.to_json() for minute in self.history],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LineStatus:
        return cls(
            name=str(raw["name"]), public_host=str(raw["public_host"]),
            public_address=str(raw["public_address"]), lan_address=str(raw["lan_address"]),
            target=str(raw["target"]), state=LineState(raw["state"]),
            since=_optional_float(raw.get("since")), rtt_ms=_optional_float(raw.get("rtt_ms")),
            loss=float(raw.get("loss", 0.0)), fault=Fault(raw.get("fault", "")),
            last_answer=_optional_float(raw.get("last_answer")),
            by_loopback=bool(raw.get("by_loopback", False)),
            history=tuple(Minute.from_json(m) for m in raw.get("history", ())),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def line_names(lines: Sequence[TurnUplink]) -> list[str]:
    """What the staff calls each line: its ``name``, else "Leitung 1", "Leitung 2", …"""
    return [line.name or f"Leitung {number}" for number, line in enumerate(lines, 1)]


# --- the state of one line -------------------------------------------------------------------


@dataclass
class ProbeResult:
    """One probe: its round trip if answered (seconds), else why not."""

    rtt_s: float | None
    fault: Fault = Fault.NONE


class LineWatch:
    """The state machine and the history of one line; no I/O, so it can be driven by hand."""

    def __init__(self, line: TurnUplink, name: str, target: str, *,
                 history: Iterable[Minute] = ()) -> None:
        self.line, self.name, self.target = line, name, target
        self.state = LineState.UNKNOWN
        self.since: float | None = None
        self.fault = Fault.NONE
        self.last_answer: float | None = None
        self.misses = 0
        self.answers = 0
        self._window: deque[float | None] = deque(maxlen=WINDOW)
        self._rtts: deque[float] = deque(maxlen=5)
        self.history: deque[Minute] = deque(history, maxlen=HISTORY_MINUTES)

    @property
    def suspect(self) -> bool:
        """A probe was just lost on a line not (yet) down: confirm quickly."""
        return 0 < self.misses < DOWN_AFTER and self.state is not LineState.DOWN

    @property
    def loss(self) -> float:
        return (sum(rtt is None for rtt in self._window) / len(self._window)
                if self._window else 0.0)

    @property
    def rtt_ms(self) -> float | None:
        return statistics.median(self._rtts) if self._rtts else None

    def record(self, result: ProbeResult, now: float) -> LineState | None:
        """Take one probe's result at Unix time ``now``; the new state if it changed."""
        answered = result.rtt_s is not None
        self.fault = result.fault
        self._window.append(result.rtt_s)
        if answered:
            assert result.rtt_s is not None
            self._rtts.append(result.rtt_s * 1000)
            self.last_answer = now
            self.misses, self.answers = 0, self.answers + 1
        else:
            self.misses, self.answers = self.misses + 1, 0
        old = self.state
        new = self._next_state(answered)
        if new is not old:
            self.state, self.since = new, now
        self._count(now, result)
        return new if new is not old else None

    def _next_state(self, answered: bool) -> LineState:
        state = self.state
        if not answered:
            if self.misses >= DOWN_AFTER and state is not LineState.UNKNOWN:
                return LineState.DOWN
            return state
        if state is LineState.DOWN:
            if self.answers < UP_AFTER:
                return state
            # back: the outage's misses say nothing about the line now
            self._window = deque(list(self._window)[-self.answers:], maxlen=WINDOW)
            return self._quality(LineState.UP)
        return self._quality(state if state is not LineState.UNKNOWN else LineState.UP)

    def _quality(self, state: LineState) -> LineState:
        """Up or degraded, with hysteresis: degraded from the thresholds, up below half."""
        loss, rtt = self.loss, self.rtt_ms or 0.0
        if loss >= DEGRADED_LOSS or rtt >= DEGRADED_RTT_MS:
            return LineState.DEGRADED
        if state is LineState.DEGRADED and (loss >= DEGRADED_LOSS / 2
                                            or rtt >= DEGRADED_RTT_MS / 2):
            return LineState.DEGRADED
        return LineState.UP

    def _count(self, now: float, result: ProbeResult) -> None:
        start = int(now) // 60 * 60
        if not self.history or self.history[-1].start != start:
            self.history.append(Minute(start=start))
        minute = self.history[-1]
        minute.sent += 1
        if result.rtt_s is not None:
            minute.answered += 1
            minute.rtt_ms_sum += result.rtt_s * 1000
        if _SEVERITY[self.state] > _SEVERITY[minute.worst]:
            minute.worst = self.state

    def status(self) -> LineStatus:
        return LineStatus(
            name=self.name, public_host=self.line.public_host,
            public_address=self.line.public_address, lan_address=self.line.lan_address,
            target=self.target, state=self.state, since=self.since, rtt_ms=self.rtt_ms,
            loss=self.loss, fault=self.fault, last_answer=self.last_answer,
            by_loopback=self.line.stun_target is None,
            history=tuple(Minute(m.start, m.sent, m.answered, m.rtt_ms_sum, m.worst)
                          for m in self.history))


# --- probing ---------------------------------------------------------------------------------


class _StunProtocol(asyncio.DatagramProtocol):
    """Answers to the binding requests of one line's socket, by transaction id."""

    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[stun.Message]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        future = self.waiting.pop(message.transaction_id, None)
        if future is not None and not future.done():
            future.set_result(message)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: the probe times out
        _LOGGER.debug("uplink probe socket: %s", exc)


class LineProbe:
    """A STUN binding request from the line's LAN address (and interface) to its target."""

    def __init__(self, line: TurnUplink, target: tuple[str, int], *, external: bool,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.line, self.target, self.external, self.timeout_s = line, target, external, timeout_s
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _StunProtocol()
        self._address: tuple[str, int] | None = None
        self._resolved_at = 0.0

    async def probe(self) -> ProbeResult:
        loop = asyncio.get_running_loop()
        try:
            transport = await self._open()
        except OSError:
            return ProbeResult(None, Fault.NO_ADDRESS)
        try:
            address = await self._resolve()
        except OSError:
            return ProbeResult(None, Fault.NO_TARGET)
        request = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)
        future: asyncio.Future[stun.Message] = loop.create_future()
        self._protocol.waiting[request.transaction_id] = future
        started = time.monotonic()
        try:
            transport.sendto(bytes(request), address)
            answer = await asyncio.wait_for(future, self.timeout_s)
        except (TimeoutError, OSError):
            return ProbeResult(None, Fault.NO_ANSWER)
        finally:
            self._protocol.waiting.pop(request.transaction_id, None)
        rtt = time.monotonic() - started
        if answer.message_class is not stun.Class.RESPONSE:
            return ProbeResult(None, Fault.NO_ANSWER)
        mapped = answer.attributes.get("XOR-MAPPED-ADDRESS")
        if self.external and mapped and mapped[0] != self.line.public_address:
            return ProbeResult(None, Fault.OTHER_LINE)
        return ProbeResult(rtt)

    async def _open(self) -> asyncio.DatagramTransport:
        if self._transport is not None and not self._transport.is_closing():
            return self._transport
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if self.line.interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                self.line.interface.encode())
            sock.bind((self.line.lan_address, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self._protocol, sock=sock)
        self._transport = transport
        return transport

    async def _resolve(self) -> tuple[str, int]:
        """The target's IPv4 address, looked up again every 10 minutes (kept if that fails)."""
        if self._address is not None and time.monotonic() - self._resolved_at < 600:
            return self._address
        host, port = self.target
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        except OSError:
            if self._address is None:
                raise
            return self._address
        self._address = infos[0][4][:2]
        self._resolved_at = time.monotonic()
        return self._address

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


# --- the monitor -----------------------------------------------------------------------------

#: told every change of a line's state: (the line's status now, its state before)
ChangeListener = Callable[[LineStatus, LineState], None]


class UplinkMonitor:
    """Every line of the practice, probed on its own schedule; listeners hear each change."""

    def __init__(self, lines: Sequence[TurnUplink], *, turn_port: int = 3478,
                 history_file: Path | None = None, interval_s: float = INTERVAL_S,
                 timeout_s: float = TIMEOUT_S, clock: Callable[[], float] = time.time) -> None:
        self._interval_s = interval_s
        self._down_interval_s = min(DOWN_INTERVAL_S, interval_s)
        self._clock = clock
        self._history_file = history_file
        self._listeners: list[ChangeListener] = []
        kept = _read_history(history_file) if history_file else {}
        self._watches: list[LineWatch] = []
        self._probes: list[LineProbe] = []
        for line, name in zip(lines, line_names(lines), strict=True):
            external = line.stun_target is not None
            target = line.stun_target or (line.public_address, turn_port)
            self._watches.append(LineWatch(line, name, f"{target[0]}:{target[1]}",
                                           history=kept.get(line.public_host, ())))
            self._probes.append(LineProbe(line, target, external=external, timeout_s=timeout_s))
        self._saved_minute = 0

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener`` with every change of a line's state."""
        self._listeners.append(listener)

    def status(self) -> tuple[LineStatus, ...]:
        """Every line now, in the order of the settings."""
        return tuple(watch.status() for watch in self._watches)

    def healthy_hosts(self) -> tuple[str, ...] | None:
        """The public hosts of the lines patients get TURN on; None without lines."""
        if not self._watches:
            return None
        return tuple(w.line.public_host for w in self._watches if w.state is not LineState.DOWN)

    async def run(self) -> None:
        """Probe every line until cancelled; the history is written on the way out."""
        if not self._watches:
            return
        try:
            await asyncio.gather(*(self._watch(watch, probe)
                                   for watch, probe in zip(self._watches, self._probes,
                                                           strict=True)))
        finally:
            for probe in self._probes:
                probe.close()
            self.save()

    async def _watch(self, watch: LineWatch, probe: LineProbe) -> None:
        # lines start at different moments: their probes never go out in step
        await asyncio.sleep(random.uniform(0, self._interval_s * JITTER))
        while True:
            result = await probe.probe()
            old = watch.state
            changed = watch.record(result, self._clock())
            if changed is not None:
                self._changed(watch, old)
            elif int(self._clock()) // 60 != self._saved_minute:
                self.save()
            await asyncio.sleep(self._pause(watch, result))

    def _pause(self, watch: LineWatch, result: ProbeResult) -> float:
        if watch.suspect:  # the timeout already spaced the probes; an error came at once
            return 0.0 if result.fault is Fault.NO_ANSWER else 0.2
        if watch.state is LineState.DOWN:
            return self._down_interval_s
        return self._interval_s * random.uniform(1 - JITTER, 1 + JITTER)

    def _changed(self, watch: LineWatch, old: LineState) -> None:
        status = watch.status()
        _LOGGER.info("line %s (%s): %s -> %s", watch.name, watch.line.public_host, old.value,
                     status.state.value)
        self.save()
        for listener in self._listeners:
            try:
                listener(status, old)
            except Exception:
                _LOGGER.exception("an uplink listener failed")

    def save(self) -> None:
        """Write the lines' state and history (atomically; a failure only costs history)."""
        if self._history_file is None:
            return
        self._saved_minute = int(self._clock()) // 60
        write_status(self._history_file, self.status(), written_at=self._clock())


def write_status(path: Path, lines: Sequence[LineStatus], *, written_at: float) -> None:
    """``lines`` as the history file; atomically, and quietly failing (a full disk)."""
    data = {"format": FILE_FORMAT, "written_at": written_at,
            "lines": [line.to_json() for line in lines]}
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data, separators=(",", ":")), "utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        _LOGGER.warning("could not write the lines' history to %s: %s", path, exc.strerror)
        with contextlib.suppress(OSError):
            temporary.unlink()


def read_status(path: Path) -> tuple[float, tuple[LineStatus, ...]] | None:
    """(when written, the lines) from the history file; None if there is none or it is unreadable
    (an older format, a torn write)."""
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("format") != FILE_FORMAT:
            return None
        return float(data["written_at"]), tuple(LineStatus.from_json(raw)
                                                 for raw in data["lines"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_history(path: Path) -> dict[str, tuple[Minute, ...]]:
    """The kept minutes of each line (by public host), the last 24 h only."""
    found = read_status(path)
    if found is None:
        return {}
    oldest = time.time() - HISTORY_MINUTES * 60
    return {line.public_host: tuple(m for m in line.history if m.start >= oldest)
            for line in found[1]}
