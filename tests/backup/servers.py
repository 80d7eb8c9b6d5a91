"""Real backup servers for the target tests, each in a network namespace of its own.

Plain helpers rather than pytest fixtures, so ``tests/backup/conftest.py`` stays free for
others: :func:`box_and_server` makes two namespaces joined by a veth pair (the box at
:data:`BOX_ADDRESS`, the server at :data:`SERVER_ADDRESS`) and always removes them;
:class:`Sshd` (Debian's OpenSSH, key authentication only), :func:`running_rest` (``rclone serve
restic`` with a user and password) and :func:`running_s3` (moto's server mode) run in the server
namespace and are always stopped. :class:`PracticeBox` is a box set up with the real command line
(``sprechzimmer init``), filled through the real services, and run inside the box namespace.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.config import load_settings
from appliance.practice.models import Role
from appliance.runtime import build_services
from appliance.vault import KdfParams, Vault
from tests.rtc.turn_fixtures import remove_stale_namespaces, run_in

BOX_ADDRESS, SERVER_ADDRESS = "10.99.0.1", "10.99.0.2"
START_TIMEOUT_S = 20.0
#: Argon2id for the staff added in the test (the admin of ``init`` has the box's real one)
CHEAP_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
ADMIN_PASSWORD = "admin-passwort-123"
STAFF = {  # username: (display name, roles, LANR, password)
    "dr.mueller": ("Dr. Maria Müller", {Role.DOCTOR}, "123456701", "arzt-passwort-1234"),
    "dr.yilmaz": ("Dr. Deniz Yılmaz", {Role.DOCTOR}, "123456702", "zweite-aerztin-5678"),
    "mfa": ("Tom MFA", {Role.ASSISTANT}, None, "mfa-passwort-12345"),
}
_NETNS_PREFIX = "szbackup"
_RUNS = itertools.count()


@dataclass(frozen=True)
class Link:
    """The two namespaces: ``box`` (eth0 = BOX_ADDRESS) and ``server`` (eth0 = SERVER_ADDRESS)."""

    box: str
    server: str

    def limit_upload(self, rate: str) -> None:
        """Slow the box's sending to ``rate`` (e.g. ``"4mbit"``; tbf, as netem is not built in
        here)."""
        run_in(None, "ip", "netns", "exec", self.box, "tc", "qdisc", "add", "dev", "eth0",
               "root", "tbf", "rate", rate, "burst", "32kb", "latency", "400ms")


@contextmanager
def box_and_server() -> Iterator[Link]:
    """Two namespaces joined by a veth pair; removed afterwards, also on failure."""
    remove_stale_namespaces(_NETNS_PREFIX)
    run = next(_RUNS)
    link = Link(box=f"{_NETNS_PREFIX}{os.getpid()}-{run}-box",
                server=f"{_NETNS_PREFIX}{os.getpid()}-{run}-srv")
    created: list[str] = []
    try:
        for netns in (link.box, link.server):
            run_in(None, "ip", "netns", "add", netns)
            created.append(netns)
            run_in(None, "ip", "-n", netns, "link", "set", "lo", "up")
        run_in(None, "ip", "link", "add", "eth0", "netns", link.box, "type", "veth",
               "peer", "name", "eth0", "netns", link.server)
        for netns, address in ((link.box, BOX_ADDRESS), (link.server, SERVER_ADDRESS)):
            run_in(None, "ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
            run_in(None, "ip", "-n", netns, "link", "set", "eth0", "up")
        yield link
    finally:
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


# --- servers ---------------------------------------------------------------------------------


def _tcp_listening(pid: int, port: int) -> bool:
    # /proc/<pid>/net/tcp shows the sockets of the process's own network namespace
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(fields[1].endswith(f":{port:04X}") and fields[3] == "0A"
               for fields in (line.split() for line in lines))


def _start(netns: str, command: Sequence[str], port: int, log: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``command`` in ``netns``, once it listens on ``port``; its output goes to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(["ip", "netns", "exec", netns, *command],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   env={**os.environ, **(env or {})})
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _tcp_listening(process.pid, port):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"{command[0]} did not start:\n"
                               + log.read_text("utf-8", "replace")[-3000:])
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sshd:
    """Debian's sshd in ``netns`` on port 22: its own config, host key and authorized keys in
    ``directory``, key authentication for root only. Started and stopped by the test (also in
    the middle, for an unreachable target)."""

    PORT = 22

    def __init__(self, netns: str, directory: Path) -> None:
        self.netns, self.directory = netns, directory
        directory.mkdir(parents=True, exist_ok=True)
        self.authorized_keys = directory / "authorized_keys"
        self.authorized_keys.touch(mode=0o600)
        self.host_key = directory / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(self.host_key)], check=True, capture_output=True)
        self.config = directory / "sshd_config"
        self.config.write_text(f"""\
Port {self.PORT}
ListenAddress {SERVER_ADDRESS}
HostKey {self.host_key}
PidFile none
AuthorizedKeysFile {self.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""", "utf-8")
        self.log = directory / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def authorize(self, public_key_file: Path) -> None:
        """Let the holder of the key in ``public_key_file`` log in (as an admin does on a NAS)."""
        with self.authorized_keys.open("a", encoding="utf-8") as out:
            out.write(public_key_file.read_text("utf-8").strip() + "\n")

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        self._process = _start(self.netns, ["/usr/sbin/sshd", "-D", "-e", "-f",
                                            str(self.config)], self.PORT, self.log)

    def stop(self) -> None:
        if self._process is not None:
            _stop(self._process)
            self._process = None

    def __enter__(self) -> Sshd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


REST_PORT = 8000
REST_USER, REST_PASSWORD = "praxis", "rest-passwort-7c1f9e"


@contextmanager
def running_rest(netns: str, directory: Path) -> Iterator[Path]:
    """``rclone serve restic`` in ``netns`` on REST_PORT with REST_USER/REST_PASSWORD, its
    repositories below ``directory`` (yielded)."""
    directory.mkdir(parents=True, exist_ok=True)
    process = _start(netns, [
        "rclone", "serve", "restic", "--config", str(directory.parent / "rclone.conf"),
        "--addr", f"{SERVER_ADDRESS}:{REST_PORT}", "--user", REST_USER, "--pass", REST_PASSWORD,
        str(directory)], REST_PORT, directory.parent / "rclone.log")
    try:
        yield directory
    finally:
        _stop(process)


S3_PORT = 5000
S3_ACCESS_KEY, S3_SECRET_KEY = "AKIAPRAXIS0EXAMPLE01", "s3-geheim/0123456789abcdefghijklmnopqrs"


@contextmanager
def running_s3(netns: str, directory: Path) -> Iterator[None]:
    """moto's S3 server in ``netns`` on S3_PORT (in memory: gone when it stops)."""
    directory.mkdir(parents=True, exist_ok=True)
    moto_server = Path(sys.executable).with_name("moto_server")
    process = _start(netns, [str(moto_server), "-H", SERVER_ADDRESS, "-p", str(S3_PORT)],
                     S3_PORT, directory / "moto.log")
    try:
        yield
    finally:
        _stop(process)


# --- the box ---------------------------------------------------------------------------------


INIT = ("init", "--practice-name", "Praxis Dr. Beispiel", "--bsnr", "123456789",
        "--street", "Hauptstr. 1", "--postal-code", "50667", "--city", "Köln",
        "--kv-region", "NO", "--admin-username", "admin", "--admin-name", "Anna Admin")


@dataclass(frozen=True)
class Target:
    """One ``[[backup.targets]]`` entry."""

    name: str
    url: str
    credentials: dict[str, str] | None = None


class PracticeBox:
    """A box in ``directory`` (vault, backup dir, settings file), driven by its command line;
    ``netns``: where its backups run."""

    def __init__(self, directory: Path, targets: Sequence[Target],
                 netns: str | None = None) -> None:
        self.directory, self.netns = directory, netns
        directory.mkdir(parents=True, exist_ok=True)
        self.data = directory / "data"
        self.config = directory / "sprechzimmer.toml"
        self.recovery_key_file = directory / "recovery-key.txt"
        lines = ["[web]", 'public_urls = ["https://videosprechstunde.praxis-beispiel.de"]',
                 "[vault]", f'path = "{self.data / "vault"}"', "[tls]", 'mode = "off"',
                 "[backup]", 'schedule = ""']
        for target in targets:
            lines += ["[[backup.targets]]", f'name = "{target.name}"', f'url = "{target.url}"']
            if target.credentials:
                credentials = self.credentials_file(target.name, target.credentials)
                lines.append(f'credentials_file = "{credentials}"')
        self.config.write_text("\n".join(lines) + "\n", "utf-8")

    def credentials_file(self, name: str, values: dict[str, str]) -> Path:
        """A target's credentials file (KEY=VALUE, mode 0600), outside the box's data."""
        path = self.directory / f"{name}.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), "utf-8")
        return path

    @property
    def settings(self) -> Any:
        return load_settings(self.config)

    @property
    def ssh_key(self) -> Path:
        """The box's own key for SFTP targets (``<backup dir>/ssh/id_ed25519``)."""
        return self.settings.backup_dir / "ssh" / "id_ed25519"

    def make_ssh_key(self) -> Path:
        """Generate the box's SFTP key; its public half (``.pub``)."""
        self.ssh_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sprechzimmer",
                        "-f", str(self.ssh_key)], check=True, capture_output=True)
        return self.ssh_key.with_name("id_ed25519.pub")

    def command(self, *args: str, in_netns: bool = True) -> list[str]:
        """The argv of ``sprechzimmer --config F ARGS`` (in the box's namespace)."""
        argv = [sys.executable, "-m", "appliance", "--config", str(self.config), *args]
        if in_netns and self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def cli(self, *args: str, stdin: str = "", in_netns: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``sprechzimmer --config F ARGS``; its result."""
        return subprocess.run(self.command(*args, in_netns=in_netns), cwd=self.directory,
                              input=stdin, text=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        """Onboard the box with ``sprechzimmer init`` (the recovery key into its file)."""
        result = self.cli(*INIT, "--recovery-key-file", str(self.recovery_key_file),
                          stdin=ADMIN_PASSWORD + "\n", in_netns=False)
        assert result.returncode == 0, result.stderr

    def fill(self, patients: int = 12, *, note: str = "") -> None:
        """Staff (STAFF), ``patients`` patients with an appointment each, through the real
        services; the vault is closed afterwards."""
        services = build_services(self.settings, kdf=CHEAP_KDF)
        try:
            services.staff.login("admin", ADMIN_PASSWORD, source="cli")
            known = {member.username for member in services.staff.list()}
            for username, (name, roles, lanr, password) in STAFF.items():
                if username not in known:
                    services.staff.add("admin", username=username, display_name=name,
                                       roles=roles, password=password, lanr=lanr)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
            doctors = [u for u, (_, roles, _, _) in STAFF.items() if Role.DOCTOR in roles]
            for number in range(patients):
                patient = services.patients.add(
                    "admin", full_name=f"Patientin {note}{number:05d} Beispiel",
                    email=f"p{note}{number}@example.org", phone=f"+49 221 {number:07d}")
                services.appointments.create(
                    "admin", doctor=doctors[number % len(doctors)], patient_id=patient.id,
                    start=start + timedelta(minutes=15 * number))
        finally:
            services.vault.close()

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Every record of every table of the vault, opened with the admin's password (the
        bare vault: a login would add to the audit log)."""
        vault = Vault(self.settings.vault.path)
        try:
            vault.unseal("admin", ADMIN_PASSWORD)
            db = vault.db
            return {name: sorted((dict(doc) for doc in db.table(name).all()), key=repr)
                    for name in sorted(db.tables())}
        finally:
            vault.close()

    def logins(self) -> dict[str, bool]:
        """Whether each staff member (and the admin) logs in with their old password."""
        found = {}
        for username, password in [("admin", ADMIN_PASSWORD),
                                   *((u, entry[3]) for u, entry in STAFF.items())]:
            services = build_services(self.settings, kdf=CHEAP_KDF)
            try:
                member = services.staff.login(username, password, source="cli")
                found[username] = member.username == username
            except Exception:  # noqa: BLE001 - any refusal is a failed login here
                found[username] = False
            finally:
                services.vault.close()
        return found
