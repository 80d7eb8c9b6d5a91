"""The command line of the backup: ``sprechzimmer backup run|list|verify|key`` and
``sprechzimmer restore`` (docs/backup.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from appliance.config import Settings, default_config_path
from appliance.vault import RecoveryKey, Vault

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1


#: reads a secret from a file, or asks for it: (path or None, prompt) -> the text
ReadSecret = Callable[[Path | None, str], str]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                 read_secret: ReadSecret) -> None:
    """The ``backup`` and ``restore`` commands; ``read_secret(path, prompt)`` reads a key."""
    backup = commands.add_parser(
        "backup", help="Datensicherung: sichern, auflisten, prüfen",
        description="Sichert den verschlüsselten Tresor, die Einstellungen und die Schlüssel der "
        "Zertifikate mit restic auf jedes Ziel unter [[backup.targets]] (docs/backup.md). Das "
        "Passwort der Repositories entsteht aus dem Wiederherstellungsschlüssel.")
    actions = backup.add_subparsers(dest="backup_command", metavar="AKTION", required=True)
    run = actions.add_parser("run", help="jetzt sichern (Exit-Status 0 nur, wenn jedes Ziel "
                             "gesichert wurde)")
    listing = actions.add_parser("list", help="die Sicherungen eines Ziels auflisten")
    verify = actions.add_parser("verify", help="jedes Ziel prüfen: restic check und eine "
                                "Probe-Wiederherstellung")
    for action in (run, listing, verify):
        action.add_argument("--target", metavar="NAME", action="append", default=[],
                            help="nur dieses Ziel (mehrfach möglich; sonst alle)")
    run.set_defaults(run=_run)
    listing.set_defaults(run=_list)
    verify.set_defaults(run=_verify)
    key = actions.add_parser(
        "key", help="das Passwort der Sicherungen aus dem Wiederherstellungsschlüssel ableiten",
        description="Für eine Box, die vor der Datensicherung eingerichtet wurde: Der "
        "Schlüssel wird am Tresor geprüft, das abgeleitete Passwort gespeichert, der "
        "Schlüssel selbst nicht.")
    key.add_argument("--recovery-key-file", type=Path, metavar="DATEI",
                     help="Datei mit dem Wiederherstellungsschlüssel (sonst Abfrage)")
    key.set_defaults(run=lambda args, settings: _key(args, settings, read_secret))

    restore = commands.add_parser(
        "restore", help="eine Sicherung auf diese (neue) Box zurückholen",
        description="Holt eine Sicherung aus einem restic-Repository in den Tresorpfad dieser "
        "Box, die noch keinen Tresor hat. Nur wenn die Sicherung unversehrt ist und sich mit "
        "dem Wiederherstellungsschlüssel öffnet, wird sie übernommen; danach melden sich alle "
        "mit ihren bisherigen Passwörtern an.")
    restore.add_argument("--target", required=True, metavar="URL",
                         help="das Repository (eine restic-Adresse oder ein Pfad)")
    restore.add_argument("--recovery-key-file", type=Path, metavar="DATEI",
                         help="Datei mit dem Wiederherstellungsschlüssel (sonst Abfrage)")
    restore.add_argument("--snapshot", metavar="ID", help="diese Sicherung (sonst die neueste)")
    restore.add_argument("--credentials-file", type=Path, metavar="DATEI",
                         help="Zugangsdaten des Repositories (KEY=WERT-Zeilen, Modus 0600)")
    restore.set_defaults(run=lambda args, settings: _restore(args, settings, read_secret))


def _service(settings: Settings, args: argparse.Namespace):  # noqa: ANN202 - BackupService
    from appliance.backup.service import BackupService

    config = getattr(args, "config", None) or default_config_path()
    return BackupService(settings, config_path=config)


def _progress(prefix: str):  # noqa: ANN202 - the callback
    interactive = sys.stderr.isatty()
    shown = {"percent": -10}

    def show(name: str, share: float, done: int) -> None:
        percent = int(share * 100)
        if interactive:
            print(f"\r{prefix}{name}: {percent:3d} % ({done / 1e6:.1f} MB)", end="",
                  file=sys.stderr, flush=True)
        elif percent >= shown["percent"] + 10:
            shown["percent"] = percent
            print(f"{prefix}{name}: {percent} %", file=sys.stderr, flush=True)

    return show


def _run(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings, args)
    results = asyncio.run(service.run(args.target, progress=_progress("Sicherung ")))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for result in results:
        if result.ok:
            print(f"{result.target}: gesichert (Sicherung {result.snapshot_id[:8]}, "
                  f"{result.data_added / 1e6:.2f} MB neu)")
        else:
            print(f"{result.target}: FEHLGESCHLAGEN – {result.detail}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def _list(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings, args)
    names = args.target or [t.name for t in settings.backup.targets]
    for name in names:
        snapshots = asyncio.run(service.snapshots(name))
        print(f"{name}: {len(snapshots)} Sicherungen")
        for snapshot in snapshots:
            print(f"  {snapshot.short_id}  {snapshot.time[:19].replace('T', ' ')} UTC")
    return EXIT_OK


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    results = asyncio.run(_service(settings, args).verify(args.target))
    for result in results:
        print(f"{result.target}: " + ("in Ordnung (geprüft, Probe-Wiederherstellung stimmt)"
                                       if result.ok else f"FEHLER – {result.detail}"))
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def _key(args: argparse.Namespace, settings: Settings, read_secret: ReadSecret) -> int:
    from appliance.backup.service import BackupError

    key = RecoveryKey.parse(read_secret(args.recovery_key_file, "Wiederherstellungsschlüssel: "))
    if not Vault(settings.vault.path).recovery_key_matches(key):
        raise BackupError("Dieser Wiederherstellungsschlüssel gehört nicht zu diesem Tresor "
                          "(oder er wurde inzwischen ersetzt).")
    _service(settings, args).keep_password(key)
    print("Das Passwort der Sicherungen ist gespeichert; die Box kann jetzt sichern.")
    return EXIT_OK


def _restore(args: argparse.Namespace, settings: Settings, read_secret: ReadSecret) -> int:
    key = RecoveryKey.parse(read_secret(args.recovery_key_file, "Wiederherstellungsschlüssel: "))
    show = _progress("Wiederherstellung aus ")
    snapshot = asyncio.run(_service(settings, args).restore(
        args.target, key, snapshot_id=args.snapshot, credentials_file=args.credentials_file,
        progress=lambda share, done: show(args.target, share, done)))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"Sicherung {snapshot.short_id} vom {snapshot.time[:19].replace('T', ' ')} UTC "
          f"wiederhergestellt nach {settings.vault.path}. Alle melden sich mit ihren bisherigen "
          "Passwörtern an.")
    return EXIT_OK
