"""The ``sprechzimmer`` command: serve the box, onboard it, manage users, inspect the vault."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.backup_cli import add_commands as add_backup_commands
from appliance.config import (
    EMBEDDED_CONFIG,
    Settings,
    box_addresses,
    default_config_path,
    load_settings,
    write_embedded_defaults,
)
from appliance.errors import (
    ConfigError,
    InvalidInput,
    SprechzimmerError,
    VaultAlreadyInitialized,
)
from appliance.logs import setup_logging

if TYPE_CHECKING:  # the services import the whole box; commands load them when they run
    from appliance.practice.services import PracticeServices

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2

DESCRIPTION = """\
Sprechzimmer – die Videosprechstunde im eigenen Praxisnetz.

Ohne Einstellungsdatei startet die Box mit eingebauten Standardwerten: Daten in ./var,
Praxis-Oberfläche auf http://127.0.0.1:8080, Patientenseite auf http://127.0.0.1:8081.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprechzimmer", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sprechzimmer {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="DATEI",
        help="Einstellungsdatei (Standard: /etc/sprechzimmer/sprechzimmer.toml auf einer Box, "
        "sonst ./var/sprechzimmer.toml)",
    )
    commands = parser.add_subparsers(dest="command", metavar="BEFEHL", required=True)

    serve = commands.add_parser("serve", help="die Box starten (beide Seiten)",
                                description="Startet Praxis- und Patientenseite.")
    serve.set_defaults(run=_serve)

    init = commands.add_parser(
        "init", help="Ersteinrichtung ohne Browser (für die Bereitstellung)",
        description="Richtet die Box ein: Praxisdaten und erster Admin. Der "
        "Wiederherstellungsschlüssel wird genau einmal ausgegeben (oder als Notfallblatt "
        "geschrieben). Werte aus --from-file (TOML mit [practice] und [admin]) oder Optionen.",
    )
    init.add_argument("--from-file", type=Path, metavar="DATEI",
                      help="TOML-Datei mit [practice] und [admin]")
    for option, text in (
        ("--practice-name", "Name der Praxis"), ("--bsnr", "Betriebsstättennummer (9 Ziffern)"),
        ("--street", "Straße und Hausnummer"), ("--postal-code", "Postleitzahl"),
        ("--city", "Ort"), ("--kv-region", "KV-Bezirk, z. B. NO für Nordrhein"),
        ("--timezone", "Zeitzone (Standard Europe/Berlin)"),
        ("--admin-username", "Benutzername des ersten Admins"),
        ("--admin-name", "Anzeigename des ersten Admins"),
        ("--admin-lanr", "LANR, wenn der Admin auch Arzt ist"),
    ):
        init.add_argument(option, help=text)
    init.add_argument("--public-url", action="append", metavar="URL",
                      help="Adresse der Patientenseite (mehrfach möglich)")
    init.add_argument("--admin-password-file", type=Path, metavar="DATEI",
                      help="Datei mit dem Admin-Passwort (sonst Abfrage oder Standardeingabe)")
    init.add_argument("--recovery-key-file", type=Path, metavar="DATEI",
                      help="den Wiederherstellungsschlüssel in diese Datei schreiben (Modus 0600) "
                      "statt ihn anzuzeigen")
    init.set_defaults(run=_init)

    user = commands.add_parser("user", help="Mitarbeiterkonten verwalten",
                               description="Mitarbeiterkonten verwalten. Ändernde Befehle "
                               "brauchen die Anmeldung eines Admins (--as) und den gestoppten "
                               "Dienst.")
    user_cmds = user.add_subparsers(dest="user_command", metavar="AKTION", required=True)
    add = user_cmds.add_parser("add", help="Konto anlegen")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="Anzeigename")
    add.add_argument("--role", action="append", required=True,
                     choices=["doctor", "assistant", "admin"], help="Rolle (mehrfach möglich)")
    add.add_argument("--lanr", help="LANR (9 Ziffern, für Ärztinnen und Ärzte)")
    add.add_argument("--password-file", type=Path, metavar="DATEI")
    add.set_defaults(run=_user_add)
    lst = user_cmds.add_parser("list", help="Konten auflisten")
    lst.set_defaults(run=_user_list)
    passwd = user_cmds.add_parser("passwd", help="Passwort setzen")
    passwd.add_argument("username")
    passwd.add_argument("--password-file", type=Path, metavar="DATEI")
    passwd.set_defaults(run=_user_passwd)
    remove = user_cmds.add_parser("remove", help="Konto entfernen (Tresor wird neu verschlüsselt)")
    remove.add_argument("username")
    remove.set_defaults(run=_user_remove)
    for sub in (add, lst, passwd, remove):
        _admin_options(sub)

    vault = commands.add_parser("vault", help="den Datentresor prüfen",
                                description="Der Tresor mit allen Praxisdaten: eingerichtet, "
                                "verschlossen, offen.")
    vault_cmds = vault.add_subparsers(dest="vault_command", metavar="AKTION", required=True)
    status = vault_cmds.add_parser("status", help="eingerichtet? verschlossen?")
    status.set_defaults(run=_vault_status)
    recover = vault_cmds.add_parser(
        "recover", help="mit dem Wiederherstellungsschlüssel ein neues Passwort setzen",
        description="Notfall: Alle Passwörter sind verloren, oder der Tresor wurde auf eine neue "
        "Box kopiert. Der Wiederherstellungsschlüssel vom Notfallblatt öffnet den Tresor; danach "
        "wird für ein bestehendes Admin-Konto ein neues Passwort gesetzt.",
    )
    recover.add_argument("username", help="das Admin-Konto, das ein neues Passwort bekommt")
    recover.add_argument("--recovery-key-file", type=Path, metavar="DATEI",
                         help="Datei mit dem Wiederherstellungsschlüssel (sonst Abfrage)")
    recover.add_argument("--password-file", type=Path, metavar="DATEI",
                         help="Datei mit dem neuen Passwort (sonst Abfrage)")
    recover.set_defaults(run=_vault_recover)
    rotate = vault_cmds.add_parser(
        "rotate-recovery-key", help="einen neuen Wiederherstellungsschlüssel ausstellen",
        description="Stellt einen neuen Wiederherstellungsschlüssel aus (z. B. wenn das "
        "Notfallblatt verloren, fotografiert oder von einer ausgeschiedenen Person gesehen "
        "wurde). Der alte Schlüssel öffnet danach nichts mehr, der Tresor wird neu verschlüsselt. "
        "Braucht die Anmeldung eines Admins (--as) und den gestoppten Dienst.")
    rotate.add_argument("--recovery-key-file", type=Path, metavar="DATEI", required=True,
                        help="den neuen Schlüssel in diese Datei schreiben (Modus 0600)")
    rotate.set_defaults(run=_vault_rotate_recovery_key)
    _admin_options(rotate)

    turn = commands.add_parser(
        "turn-config", help="Konfiguration des TURN-Relays (coturn) oder der Firewall schreiben",
        description="Schreibt die coturn-Konfiguration aus den Einstellungen unter [turn] "
        "(Entwurf C aus docs/turn.md; eine coturn-Instanz je LAN-Adresse der Box) – oder mit "
        "--nft die Firewall-Regel der Box. Die coturn-Konfiguration enthält das TURN-Geheimnis: "
        "mit --output oder --output-dir wird sie atomar und mit Modus 0600 geschrieben. Mit "
        "--check prüft die laufende Box, ob ihr Relay eine Tür ins Praxisnetz ist.",
    )
    what = turn.add_mutually_exclusive_group()
    what.add_argument("--nft", action="store_true",
                      help="die nft-Regeln der Box statt der coturn-Konfiguration")
    what.add_argument("--check", action="store_true",
                      help="prüfen, ob coturn und die Firewall-Regel die Praxis abschirmen "
                      "(Exit-Status 1, wenn nicht)")
    where = turn.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, metavar="DATEI",
                       help="in diese Datei schreiben (Modus 0600) statt auf die Standardausgabe")
    where.add_argument("--output-dir", type=Path, metavar="VERZEICHNIS",
                       help="die Konfiguration jeder coturn-Instanz als "
                       "turnserver-<LAN-Adresse>.conf in dieses Verzeichnis schreiben")
    turn.add_argument("--instance", metavar="LAN-ADRESSE",
                      help="die coturn-Instanz auf dieser LAN-Adresse (nötig bei mehreren)")
    turn.set_defaults(run=_turn_config)

    tls = commands.add_parser(
        "tls", help="HTTPS: die Praxis-CA und die Zertifikate der Box",
        description="Die Praxis-CA, der die Praxis-PCs vertrauen, und die Zertifikate beider "
        "Seiten (docs/tls.md). Die CA entsteht beim ersten Start (oder hier), wenn die "
        "Praxisseite auf einer Netzwerkadresse lauscht.")
    tls_cmds = tls.add_subparsers(dest="tls_command", metavar="AKTION", required=True)
    ca = tls_cmds.add_parser("ca", help="das CA-Zertifikat (PEM) ausgeben, für die Praxis-PCs")
    ca.add_argument("--output", type=Path, metavar="DATEI",
                    help="in diese Datei schreiben statt auf die Standardausgabe")
    ca.set_defaults(run=_tls_ca)
    tls_status = tls_cmds.add_parser(
        "status", help="jedes Zertifikat mit Namen, Ablauf und Fingerabdruck")
    tls_status.set_defaults(run=_tls_status)

    uplinks = commands.add_parser(
        "uplinks", help="die Internetleitungen der Praxis: Zustand und die letzten 24 Stunden",
        description="Zeigt jede Internetleitung ([[turn.uplinks]]) so, wie die laufende Box sie "
        "zuletzt geprüft hat: Zustand, seit wann, Umlaufzeit, Verlust, was geprüft wird, was "
        "nicht stimmt, und die letzten 24 Stunden. Exit-Status 0, wenn jede Leitung antwortet "
        "(in Ordnung oder gestört); 1, wenn eine ausgefallen ist oder der Zustand unbekannt "
        "ist (Box läuft nicht, noch keine Antwort); 2 bei falschen Einstellungen.")
    uplinks.add_argument("--json", action="store_true",
                         help="als JSON ausgeben (für Überwachungswerkzeuge)")
    uplinks.set_defaults(run=_uplinks)

    discover = commands.add_parser(
        "discover", help="die Boxen im Praxisnetz finden (mDNS)",
        description="Listet jede Box, die sich im Praxisnetz meldet: Name, Adressen, "
        "https://-Adresse der Praxisseite, Version, Fingerabdruck der Praxis-CA.")
    discover.add_argument("--timeout", type=float, default=3.0, metavar="SEKUNDEN",
                          help="so lange lauschen (Standard 3)")
    discover.set_defaults(run=_discover)
    add_backup_commands(commands, _read_secret)
    _config_after_the_command(parser)
    return parser


def _admin_options(command: argparse.ArgumentParser) -> None:
    """``--as ADMIN`` and how that admin proves it: for commands that change accounts or keys."""
    command.add_argument("--as", dest="actor", metavar="ADMIN",
                         help="Benutzername des Admins, der die Änderung vornimmt")
    command.add_argument("--as-password-file", type=Path, metavar="DATEI",
                         help="Datei mit dem Passwort des Admins (sonst Abfrage)")
    command.add_argument("--totp", metavar="CODE",
                         help="der sechsstellige Code, wenn der Admin die Zwei-Faktor-Anmeldung "
                         "nutzt")


def _config_after_the_command(parser: argparse.ArgumentParser) -> None:
    """Accept ``--config`` after the command too (``sprechzimmer serve --config F``, as a unit
    or an admin writes it), on every command and sub-command."""
    for action in parser._actions:  # argparse has no public walk over its sub-commands
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument("--config", type=Path, metavar="DATEI",
                                     default=argparse.SUPPRESS,
                                     help="Einstellungsdatei (wie vor dem Befehl)")
                _config_after_the_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args.config)
    except ConfigError as exc:
        print(f"sprechzimmer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(keep=box_addresses(settings))
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, settings)
    except InvalidInput as exc:  # bad input, like a bad option: the message says what to fix
        print(f"sprechzimmer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SprechzimmerError as exc:
        print(f"sprechzimmer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


def _settings(config: Path | None) -> Settings:
    path = config or default_config_path()
    if config is None and path == EMBEDDED_CONFIG:
        write_embedded_defaults(path)
    return load_settings(path)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.runtime import async_serve, build_services

    services = build_services(settings)
    asyncio.run(async_serve(settings, services, config_path=args.config or default_config_path()))
    return EXIT_OK


def _read_secret(path: Path | None, prompt: str, *, confirm: bool = False) -> str:
    """A password from a file, from standard input (not a terminal), or asked for."""
    if path is not None:
        return path.read_text("utf-8").rstrip("\r\n")
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Noch einmal: ") != first:
        raise SystemExit("sprechzimmer: die beiden Eingaben stimmen nicht überein")
    return first


def _init(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.practice.models import PracticeProfile, Role
    from appliance.practice.onboarding import onboard
    from appliance.runtime import build_services

    values: dict[str, Any] = {"practice": {}, "admin": {}}
    if args.from_file:
        try:
            values = tomllib.loads(args.from_file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            print(f"sprechzimmer init: {args.from_file} ist nicht lesbar oder kein gültiges "
                  f"TOML ({exc})", file=sys.stderr)
            return EXIT_CONFIG
    practice, admin = values.get("practice", {}), values.get("admin", {})
    for key, option in (("name", "practice_name"), ("bsnr", "bsnr"), ("street", "street"),
                        ("postal_code", "postal_code"), ("city", "city"),
                        ("kv_region", "kv_region"), ("timezone", "timezone")):
        if getattr(args, option):
            practice[key] = getattr(args, option)
    if args.public_url:
        practice["public_urls"] = args.public_url
    for key, option in (("username", "admin_username"), ("display_name", "admin_name"),
                        ("lanr", "admin_lanr")):
        if getattr(args, option):
            admin[key] = getattr(args, option)
    missing = [f"--{n}" for n, v in (
        ("practice-name", practice.get("name")), ("bsnr", practice.get("bsnr")),
        ("street", practice.get("street")), ("postal-code", practice.get("postal_code")),
        ("city", practice.get("city")), ("kv-region", practice.get("kv_region")),
        ("admin-username", admin.get("username")), ("admin-name", admin.get("display_name")),
    ) if not v]
    if missing:
        print("sprechzimmer init: es fehlen " + ", ".join(missing), file=sys.stderr)
        return EXIT_CONFIG
    from appliance.vault import Vault

    if Vault(settings.vault.path).initialized:
        raise VaultAlreadyInitialized()
    password = admin.get("password") or _read_secret(
        args.admin_password_file, "Passwort des Admins: ", confirm=True
    )
    profile = PracticeProfile(
        name=practice["name"], bsnr=str(practice["bsnr"]), street=practice["street"],
        postal_code=str(practice["postal_code"]), city=practice["city"],
        kv_region=practice["kv_region"], timezone=practice.get("timezone", "Europe/Berlin"),
        public_urls=tuple(practice.get("public_urls") or settings.web.public_urls),
    )
    lanr = admin.get("lanr")
    roles = {Role.ADMIN} | ({Role.DOCTOR} if lanr else set())
    key_file = None
    if args.recovery_key_file:
        # opened before the vault exists: a wrong path must not cost the only copy of the key
        try:
            fd = os.open(args.recovery_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            print(f"sprechzimmer init: {args.recovery_key_file} kann nicht neu angelegt werden "
                  f"({exc.strerror}); bitte einen neuen Dateinamen angeben.", file=sys.stderr)
            return EXIT_CONFIG
        key_file = os.fdopen(fd, "w", encoding="utf-8")
    services = build_services(settings)
    try:
        key = onboard(services, profile=profile, username=admin["username"],
                      display_name=admin["display_name"], password=password, roles=roles,
                      lanr=lanr)
    except BaseException:
        if key_file is not None:
            key_file.close()
            args.recovery_key_file.unlink()
        raise
    finally:
        services.vault.close()
    if key_file is not None:
        with key_file:
            key_file.write(str(key) + "\n")
        print(f"Box eingerichtet. Wiederherstellungsschlüssel in {args.recovery_key_file}.")
    else:
        print("Box eingerichtet. Wiederherstellungsschlüssel (wird nur jetzt angezeigt, bitte "
              "ausdrucken und sicher verwahren):\n")
        print("    " + str(key) + "\n")
    return EXIT_OK


def _service_status(settings: Settings) -> dict[str, Any] | None:
    """The running service's own status, or None when it does not answer on the staff site."""
    host = settings.web.staff_host[0]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{settings.web.staff_port}/api/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - own LAN address
            return json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _vault_status(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.vault import Vault

    status = Vault(settings.vault.path).status()
    running = _service_status(settings)
    print(f"Tresor:        {settings.vault.path}")
    print(f"Eingerichtet:  {'ja' if status.initialized else 'nein'}")
    if running is None:
        print("Dienst:        läuft nicht (oder ist auf der Praxisseite nicht erreichbar)")
        print("Zustand:       verschlossen (ohne laufenden Dienst ist der Tresor immer zu)")
    else:
        sealed = running.get("sealed", True)
        print("Dienst:        läuft")
        print("Zustand:       " + ("verschlossen – die erste Anmeldung eines Mitarbeiters "
                                   "öffnet ihn" if sealed else "offen"))
    print(f"Konten:        {status.member_count}")
    return EXIT_OK


@contextlib.contextmanager
def _as_admin(args: argparse.Namespace, settings: Settings) -> Iterator[PracticeServices]:
    """The box's services, opened by the admin named with ``--as``; closed afterwards."""
    from appliance.practice.models import Role
    from appliance.practice.throttle import CLI_SOURCE
    from appliance.runtime import build_services

    if _service_status(settings) is not None:
        print("sprechzimmer: der Dienst läuft. Bitte Konten in der Praxis-Oberfläche verwalten "
              "oder den Dienst vorher stoppen (systemctl stop sprechzimmer).", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)
    if not args.actor:
        print("sprechzimmer: bitte mit --as ADMIN angeben, wer die Änderung vornimmt.",
              file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    services = build_services(settings)
    try:
        password = _read_secret(args.as_password_file, f"Passwort von {args.actor}: ")
        member = services.staff.login(args.actor, password, args.totp, source=CLI_SOURCE)
        if Role.ADMIN not in member.roles:
            print("sprechzimmer: nur ein Admin darf Konten ändern.", file=sys.stderr)
            raise SystemExit(EXIT_ERROR)
        args.actor_password = password  # a change of one's own password needs the old one
        yield services
    finally:
        services.vault.close()


def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.practice.models import Role

    with _as_admin(args, settings) as services:
        password = _read_secret(args.password_file, f"Passwort für {args.username}: ",
                                confirm=True)
        services.staff.add(args.actor, username=args.username, display_name=args.name,
                           roles=frozenset(Role(r) for r in args.role), password=password,
                           lanr=args.lanr)
    print(f"Konto {args.username} angelegt.")
    return EXIT_OK


def _user_list(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.vault import Vault

    if not args.actor:
        count = Vault(settings.vault.path).status().member_count
        print(f"{count} {'Konto' if count == 1 else 'Konten'}. Die Namen stehen verschlüsselt "
              "im Tresor: sprechzimmer user list --as ADMIN zeigt sie.")
        return EXIT_OK
    with _as_admin(args, settings) as services:
        for member in services.staff.list():
            roles = ",".join(sorted(r.value for r in member.roles))
            print(f"{member.username}\t{member.display_name}\t{roles}")
    return EXIT_OK


def _user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.practice.throttle import CLI_SOURCE

    with _as_admin(args, settings) as services:
        password = _read_secret(args.password_file, f"Neues Passwort für {args.username}: ",
                                confirm=True)
        old = args.actor_password if args.username == args.actor else None
        services.staff.set_password(args.actor, args.username, password, old_password=old,
                                    source=CLI_SOURCE)
    print(f"Passwort von {args.username} gesetzt.")
    return EXIT_OK


def _user_remove(args: argparse.Namespace, settings: Settings) -> int:
    with _as_admin(args, settings) as services:
        services.staff.remove(args.actor, args.username)
    print(f"Konto {args.username} entfernt; der Tresor wurde neu verschlüsselt.")
    return EXIT_OK


def _vault_recover(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.runtime import build_services

    if _service_status(settings) is not None:
        print("sprechzimmer: der Dienst läuft. Bitte vorher stoppen "
              "(systemctl stop sprechzimmer).", file=sys.stderr)
        return EXIT_ERROR
    key = _read_secret(args.recovery_key_file, "Wiederherstellungsschlüssel: ")
    password = _read_secret(args.password_file, f"Neues Passwort für {args.username}: ",
                            confirm=True)
    services = build_services(settings)
    try:
        services.staff.recover(key, args.username, password)
    finally:
        services.vault.close()
    print(f"Tresor mit dem Wiederherstellungsschlüssel geöffnet; {args.username} hat ein neues "
          "Passwort.")
    return EXIT_OK


def _vault_rotate_recovery_key(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.vault.journal import fsync_dir

    target = args.recovery_key_file
    # the file is made before the key changes: a wrong path must not cost the only new copy
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"sprechzimmer: {target} lässt sich nicht schreiben ({exc.strerror}); bitte ein "
              "beschreibbares Verzeichnis angeben.", file=sys.stderr)
        return EXIT_CONFIG
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        try:
            with _as_admin(args, settings) as services:
                key = services.staff.rotate_recovery_key(args.actor)
        except BaseException:
            temporary.unlink()
            raise
        try:
            out.write(str(key) + "\n")
            out.flush()
            os.fsync(out.fileno())
            os.replace(temporary, target)
            fsync_dir(target.parent)
        except OSError as exc:  # the vault has the new key already: never lose it
            print(f"sprechzimmer: {target} ließ sich nicht schreiben ({exc.strerror}). Der neue "
                  f"Wiederherstellungsschlüssel lautet:\n\n    {key}\n", file=sys.stderr)
            return EXIT_ERROR
    print(f"Neuer Wiederherstellungsschlüssel in {target}. Der alte öffnet nichts mehr; bitte "
          "das neue Notfallblatt ausdrucken und das alte vernichten.")
    return EXIT_OK


def _box_tls(settings: Settings):  # noqa: ANN202 - BoxTls, imported when the command runs
    from appliance.clock import Clock
    from appliance.tls.sites import BoxTls

    return BoxTls(settings, clock=Clock())


def _discover(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.discovery import discover

    if not 0 < args.timeout <= 600:
        print("sprechzimmer: --timeout: Sekunden von 0 bis 600", file=sys.stderr)
        return EXIT_CONFIG
    boxes = asyncio.run(discover(args.timeout))
    for box in boxes:
        practice = f"  Praxis: {box.practice}" if box.practice else ""
        print(f"{box.url}  {box.host.rstrip('.')}  {', '.join(box.addresses)}  "
              f"Version {box.version}  CA {box.ca_fingerprint}{practice}")
    if not boxes:
        print(f"keine Box gefunden ({args.timeout:g} s gelauscht)", file=sys.stderr)
    return EXIT_OK


def _uplinks(args: argparse.Namespace, settings: Settings) -> int:
    import time
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from appliance.practice.models import DEFAULT_TIMEZONE
    from appliance.uplink_report import read_report, render_text, to_json
    from appliance.uplinks import HISTORY_FILE, read_status

    path = settings.vault.resume_dir / HISTORY_FILE
    report = read_report(path, now=time.time(), configured=len(settings.turn.uplinks),
                         found=read_status(path))
    try:  # the practice's zone is in the sealed vault: the box's TZ, else the default
        tz = ZoneInfo(os.environ.get("TZ", "").lstrip(":") or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(DEFAULT_TIMEZONE)
    if args.json:
        print(json.dumps(to_json(report, tz), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render_text(report, tz))
    return report.exit_status


def _tls_ca(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.tls.authority import write_atomically

    tls = _box_tls(settings)
    if tls.lan is None:
        print("sprechzimmer: die Praxisseite lauscht nur auf Loopback oder [tls] mode = \"off\" "
              f"(in {settings.source}): ohne HTTPS im Praxisnetz gibt es keine Praxis-CA",
              file=sys.stderr)
        return EXIT_CONFIG
    pem = tls.lan.ca.pem
    if args.output is None:
        sys.stdout.write(pem.decode("ascii"))
    else:
        try:
            write_atomically(args.output, pem, mode=0o644)
        except OSError as exc:
            print(f"sprechzimmer: {args.output}: {exc.strerror}", file=sys.stderr)
            return EXIT_ERROR
        print(f"Praxis-CA geschrieben: {args.output}\nSHA-256: {tls.lan.ca.fingerprint}",
              file=sys.stderr)
    return EXIT_OK


def _tls_status(args: argparse.Namespace, settings: Settings) -> int:
    tls = _box_tls(settings)
    if not tls.enabled:
        print("HTTPS: aus ([tls] mode = \"off\")")
    print(f"Praxisseite: {'HTTPS' if tls.staff_https else 'HTTP'} auf "
          f"{', '.join(settings.web.staff_host)} Port {settings.web.staff_port}")
    print(f"Patientenseite: {'HTTPS' if tls.public_https else 'HTTP'} auf "
          f"{', '.join(settings.web.public_host)} Port {settings.web.public_port}"
          + ("" if tls.public is None else f" (Zertifikat: {tls.public.source})"))
    for info in tls.certificates():
        print(f"\n{info.role}\n  Inhaber:  {info.subject}\n  Aussteller: {info.issuer}")
        if info.names:
            print(f"  Namen:    {', '.join(info.names)}")
        print(f"  gültig bis: {info.not_after:%Y-%m-%d %H:%M} UTC\n"
              f"  SHA-256:  {info.fingerprint}")
    return EXIT_OK


def _turn_config(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.rtc.turn import coturn_config, nft_rules, relay_instances
    from appliance.vault.journal import write_atomic

    turn = settings.turn
    if not turn.enabled:
        print(f"sprechzimmer: {SprechzimmerError('turn_not_configured', source=settings.source)}",
              file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        return _turn_check(settings)
    instances = relay_instances(turn)
    if args.nft:
        files = {args.output: nft_rules(turn)}
    elif args.output_dir is not None:
        files = {args.output_dir / f"turnserver-{address}.conf": coturn_config(turn, address)
                 for address in instances}
    else:
        instance = args.instance or (instances[0] if len(instances) == 1 else None)
        if instance not in instances:
            print(f"sprechzimmer: --instance: eine der LAN-Adressen {', '.join(instances)} "
                  "(die Box betreibt eine coturn-Instanz je Adresse; --output-dir schreibt "
                  "alle)", file=sys.stderr)
            return EXIT_CONFIG
        files = {args.output: coturn_config(turn, instance)}
    for path, text in files.items():
        if path is None:
            sys.stdout.write(text)
            continue
        try:
            write_atomic(path.parent, path.name, [text.encode("utf-8")])
        except OSError as exc:
            print(f"sprechzimmer: {path} lässt sich nicht schreiben ({exc.strerror})",
                  file=sys.stderr)
            return EXIT_ERROR
        print(f"{'nft-Regeln' if args.nft else 'coturn-Konfiguration'} in {path} geschrieben.")
    return EXIT_OK


def _turn_check(settings: Settings) -> int:
    from appliance.i18n import translate
    from appliance.rtc.turn_exposure import check_exposure

    findings = asyncio.run(check_exposure(settings.turn))
    for finding in findings:
        print(f"{'ok    ' if finding.ok else 'OFFEN '} {finding.message()}")
    exposed = [finding for finding in findings if not finding.ok]
    print(translate("turn.exposure.verdict_exposed" if exposed else "turn.exposure.verdict_safe",
                    count=len(exposed)))
    return EXIT_ERROR if exposed else EXIT_OK
