"""Staff accounts and login: roles, passwords, lockout, second factor, re-keying on removal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from appliance.clock import ManualClock
from appliance.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TotpRequired,
    TotpReused,
    WrongCredentials,
)
from appliance.practice import store, totp
from appliance.practice.audit import AuditLog
from appliance.practice.models import Role, StaffMember
from appliance.practice.staff import StaffDirectory
from appliance.practice.throttle import CLI_SOURCE, DEVICE_SOURCE_PREFIX

from .conftest import PASSWORDS

if TYPE_CHECKING:
    from appliance.vault import Vault

#: the practice PC the tests log in from (the web layer passes the client address)
PC = "192.0.2.10"
#: another PC in the same practice
OTHER_PC = "192.0.2.11"


def _fail(staff: StaffDirectory, username: str, times: int,
          source: str = PC) -> list[type[Exception]]:
    """Log in ``times`` times with a wrong password; the error classes raised."""
    raised: list[type[Exception]] = []
    for _ in range(times):
        with pytest.raises((AuthenticationFailed, AccountLocked)) as info:
            staff.login(username, "falsches-passwort", source=source)
        raised.append(type(info.value))
    return raised


# --- accounts ---------------------------------------------------------------------------------


def test_first_admin_creates_the_vault(staff: StaffDirectory, vault: Vault,
                                       audit: AuditLog) -> None:
    """Onboarding creates the vault with the first admin, who is then a member."""
    member, recovery_key = staff.create_first_admin(
        username="chefin", display_name="Dr. Chefin", password="chefin-passwort",
        roles=[Role.DOCTOR], lanr="123456601")
    assert recovery_key
    assert member.roles == {Role.ADMIN, Role.DOCTOR}
    assert not vault.sealed
    assert "chefin" in vault.members()
    assert staff.get("chefin") == member
    assert audit.entries(limit=1)[0].action == "staff.add"


def test_add_member(staff: StaffDirectory, doctor: StaffMember, vault: Vault,
                    passwords: dict[str, str]) -> None:
    """An admin adds a doctor; the doctor's password opens the vault from now on."""
    assert doctor.roles == {Role.DOCTOR}
    assert doctor.lanr == "123456601"
    assert [m.username for m in staff.list()] == ["admin", "dr.weber"]
    vault.seal()
    vault.unseal("dr.weber", passwords["dr.weber"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "A"}, "username"),
        ({"username": "Anna Weber"}, "username"),
        ({"username": "x" * 33}, "username"),
        ({"password": "kurz"}, "password"),
        ({"password": "123456789"}, "password"),
        ({"roles": set()}, "roles"),
        ({"roles": {"chef"}}, "roles"),
        ({"roles": {Role.DOCTOR}, "lanr": None}, "lanr"),
        ({"roles": {Role.DOCTOR}, "lanr": "12345"}, "lanr"),
        ({"display_name": "  "}, "display_name"),
    ],
)
def test_add_validates(staff: StaffDirectory, admin: StaffMember, changes: dict,
                       field: str) -> None:
    """Usernames [a-z0-9._-]{2,32}, passwords ≥ 10, roles, a doctor's 9-digit LANR."""
    arguments = {"username": "neu", "display_name": "Neu", "roles": {Role.ASSISTANT},
                 "password": "lang-genug-1", **changes}
    with pytest.raises(InvalidInput) as raised:
        staff.add("admin", **arguments)
    assert raised.value.params["field"] == field
    with pytest.raises(NotFound):
        staff.get("neu")


def test_add_needs_an_admin_and_a_new_name(staff: StaffDirectory, doctor: StaffMember,
                                           assistant: StaffMember) -> None:
    """R2: only an admin manages accounts; a username exists once."""
    with pytest.raises(PermissionDenied):
        staff.add("mfa.klein", username="neu", display_name="Neu", roles={Role.ASSISTANT},
                  password="lang-genug-1")
    with pytest.raises(Conflict):
        staff.add("admin", username="dr.weber", display_name="Zweite", roles={Role.ASSISTANT},
                  password="lang-genug-1")


def test_update(staff: StaffDirectory, doctor: StaffMember, assistant: StaffMember) -> None:
    """Members rename themselves; roles and LANR are for admins; a doctor keeps a LANR."""
    assert staff.update("dr.weber", "dr.weber", display_name="Dr. A. Weber").display_name == \
        "Dr. A. Weber"
    with pytest.raises(PermissionDenied):
        staff.update("mfa.klein", "mfa.klein", roles={Role.DOCTOR})
    with pytest.raises(PermissionDenied):
        staff.update("mfa.klein", "dr.weber", display_name="Weber")
    with pytest.raises(InvalidInput):
        staff.update("admin", "mfa.klein", roles={Role.DOCTOR})
    changed = staff.update("admin", "mfa.klein", roles={Role.DOCTOR}, lanr="111111100")
    assert changed == staff.get("mfa.klein")
    assert changed.roles == {Role.DOCTOR} and changed.lanr == "111111100"


def test_last_admin_stays(staff: StaffDirectory, admin: StaffMember,
                          doctor: StaffMember) -> None:
    """The practice always keeps an admin, and nobody removes their own account."""
    with pytest.raises(Conflict):
        staff.update("admin", "admin", roles={Role.ASSISTANT})
    with pytest.raises(Conflict):
        staff.remove("admin", "admin")
    staff.update("admin", "dr.weber", roles={Role.DOCTOR, Role.ADMIN})
    staff.update("admin", "admin", roles={Role.ASSISTANT})
    assert Role.ADMIN not in staff.get("admin").roles


def test_remove_rekeys_the_vault(staff: StaffDirectory, doctor: StaffMember,
                                 assistant: StaffMember, vault: Vault,
                                 passwords: dict[str, str]) -> None:
    """A removed member's password no longer opens the vault; the others still log in."""
    staff.remove("admin", "mfa.klein")
    with pytest.raises(NotFound):
        staff.get("mfa.klein")
    assert "mfa.klein" not in vault.members()
    vault.seal()
    with pytest.raises(WrongCredentials):
        vault.unseal("mfa.klein", passwords["mfa.klein"])
    with pytest.raises(AuthenticationFailed):
        staff.login("mfa.klein", passwords["mfa.klein"], source=PC)
    assert vault.sealed
    assert staff.login("dr.weber", passwords["dr.weber"], source=PC).username == "dr.weber"
    assert not vault.sealed
    vault.seal()
    assert staff.login("admin", passwords["admin"], source=PC).username == "admin"


def test_remove_needs_an_admin(staff: StaffDirectory, doctor: StaffMember,
                               assistant: StaffMember) -> None:
    """Only an admin removes accounts."""
    with pytest.raises(PermissionDenied):
        staff.remove("mfa.klein", "dr.weber")
    with pytest.raises(NotFound):
        staff.remove("admin", "niemand")


# --- passwords --------------------------------------------------------------------------------


def test_change_own_password_needs_the_old_one(staff: StaffDirectory, doctor: StaffMember,
                                               vault: Vault, passwords: dict[str, str]) -> None:
    """A member changing their own password must give the old one."""
    with pytest.raises(AuthenticationFailed):
        staff.set_password("dr.weber", "dr.weber", "neues-passwort-1", source=PC)
    with pytest.raises(AuthenticationFailed):
        staff.set_password("dr.weber", "dr.weber", "neues-passwort-1",
                           old_password="falsches-passwort", source=PC)
    staff.set_password("dr.weber", "dr.weber", "neues-passwort-1",
                       old_password=passwords["dr.weber"], source=PC)
    assert vault.check_password("dr.weber", "neues-passwort-1")
    assert not vault.check_password("dr.weber", passwords["dr.weber"])


def test_admin_resets_a_password(staff: StaffDirectory, doctor: StaffMember,
                                 assistant: StaffMember, vault: Vault) -> None:
    """An admin resets someone else's password without the old one; an assistant cannot."""
    with pytest.raises(PermissionDenied):
        staff.set_password("mfa.klein", "dr.weber", "neues-passwort-1", source=PC)
    with pytest.raises(InvalidInput):
        staff.set_password("admin", "dr.weber", "kurz", source=PC)
    staff.set_password("admin", "dr.weber", "neues-passwort-1", source=PC)
    vault.seal()
    assert staff.login("dr.weber", "neues-passwort-1", source=PC).username == "dr.weber"


def test_no_password_in_the_audit_log(staff: StaffDirectory, doctor: StaffMember,
                                      vault: Vault, passwords: dict[str, str]) -> None:
    """Every change is audited, and no password ever appears in the log."""
    staff.set_password("admin", "dr.weber", "neues-passwort-1", source=PC)
    staff.login("dr.weber", "neues-passwort-1", source=PC)
    with pytest.raises(AuthenticationFailed):
        staff.login("dr.weber", "falsches-passwort", source=PC)
    actions = [doc["action"] for doc in vault.db.table(store.AUDIT).all()]
    assert actions[-4:] == ["staff.add", "staff.password", "login", "login.failed"]
    dump = str(vault.db.table(store.AUDIT).all())
    for secret in (*passwords.values(), "neues-passwort-1", "falsches-passwort"):
        assert secret not in dump


# --- login and lockout ------------------------------------------------------------------------


def test_login(staff: StaffDirectory, doctor: StaffMember, passwords: dict[str, str]) -> None:
    """Right password: the member; wrong password or unknown name: the same error."""
    assert staff.login("dr.weber", passwords["dr.weber"], source=PC) == doctor
    assert staff.login(" Dr.Weber ", passwords["dr.weber"], source=PC) == doctor
    with pytest.raises(AuthenticationFailed) as wrong:
        staff.login("dr.weber", "falsches-passwort", source=PC)
    with pytest.raises(AuthenticationFailed) as unknown:
        staff.login("niemand", passwords["dr.weber"], source=PC)
    assert type(wrong.value) is type(unknown.value) is AuthenticationFailed
    assert wrong.value.message() == unknown.value.message()


def test_login_unseals_the_vault(staff: StaffDirectory, doctor: StaffMember, vault: Vault,
                                 make_vault: Callable[[], Vault], clock: ManualClock,
                                 passwords: dict[str, str]) -> None:
    """After boot the vault is sealed; the first staff login opens it, a wrong one does not."""
    vault.seal()
    rebooted = make_vault()
    assert rebooted.sealed
    directory = StaffDirectory(rebooted, AuditLog(rebooted, clock), clock)
    with pytest.raises(AuthenticationFailed):
        directory.login("dr.weber", "falsches-passwort", source=PC)
    assert rebooted.sealed
    assert directory.login("dr.weber", passwords["dr.weber"], source=PC) == doctor
    assert not rebooted.sealed


def test_lockout_after_five_failures(staff: StaffDirectory, doctor: StaffMember,
                                     clock: ManualClock, passwords: dict[str, str]) -> None:
    """R9: the fifth wrong password locks the account 15 minutes, even for the right one."""
    assert _fail(staff, "dr.weber", 5) == [AuthenticationFailed] * 4 + [AccountLocked]
    with pytest.raises(AccountLocked) as locked:
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert locked.value.params == {"minutes": 15}
    clock.advance(timedelta(minutes=14, seconds=59))
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    clock.advance(timedelta(seconds=1))
    assert staff.login("dr.weber", passwords["dr.weber"], source=PC) == doctor


def test_lockout_on_a_sealed_vault(staff: StaffDirectory, doctor: StaffMember, vault: Vault,
                                   passwords: dict[str, str]) -> None:
    """R9: guessing passwords against the sealed vault is throttled just the same."""
    vault.seal()
    assert _fail(staff, "dr.weber", 5)[-1] is AccountLocked
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert vault.sealed


def test_unknown_usernames_are_throttled_alike(staff: StaffDirectory, admin: StaffMember,
                                               clock: ManualClock) -> None:
    """R9: an unknown name locks exactly like a real one, so names cannot be probed."""
    assert _fail(staff, "niemand", 5) == [AuthenticationFailed] * 4 + [AccountLocked]
    with pytest.raises(AccountLocked):
        staff.login("niemand", "irgendwas-1", source=PC)
    clock.advance(timedelta(minutes=15))
    with pytest.raises(AuthenticationFailed):
        staff.login("niemand", "irgendwas-1", source=PC)


def test_success_resets_the_count(staff: StaffDirectory, doctor: StaffMember,
                                  passwords: dict[str, str]) -> None:
    """Four failures, a success, four failures: no lock."""
    _fail(staff, "dr.weber", 4)
    staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert _fail(staff, "dr.weber", 4) == [AuthenticationFailed] * 4


def test_failures_from_one_pc_do_not_lock_another(staff: StaffDirectory, doctor: StaffMember,
                                                  passwords: dict[str, str]) -> None:
    """Security (R9): five wrong passwords at one PC lock the name there, not at the doctor's."""
    assert _fail(staff, "dr.weber", 5) == [AuthenticationFailed] * 4 + [AccountLocked]
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert staff.login("dr.weber", passwords["dr.weber"], source=OTHER_PC) == doctor
    assert _fail(staff, "dr.weber", 4, OTHER_PC) == [AuthenticationFailed] * 4


def test_failures_from_many_addresses_lock_out_unknown_pcs_only(
    staff: StaffDirectory, doctor: StaffMember, clock: ManualClock, passwords: dict[str, str],
) -> None:
    """Security (R9), issue 8 defect 5: a guesser spread over ten addresses locks the name for
    an hour for every source the box does not know; the doctor's own PC (known by its device
    cookie) and the box's command line still log in, and from a known PC guessing stays at five
    tries per 15 minutes."""
    for n in range(10):
        _fail(staff, "dr.weber", 5, f"198.51.100.{n}")
    for source in (PC, OTHER_PC):
        with pytest.raises(AccountLocked) as locked:
            staff.login("dr.weber", passwords["dr.weber"], source=source)
        assert locked.value.params == {"minutes": 60}
    known_pc = DEVICE_SOURCE_PREFIX + "0123456789abcdef0123456789abcdef"
    assert staff.login("dr.weber", passwords["dr.weber"], source=known_pc) == doctor
    assert staff.login("dr.weber", passwords["dr.weber"], source=CLI_SOURCE) == doctor
    _fail(staff, "dr.weber", 5, known_pc)
    with pytest.raises(AccountLocked) as locked:
        staff.login("dr.weber", passwords["dr.weber"], source=known_pc)
    assert locked.value.params == {"minutes": 15}
    clock.advance(timedelta(minutes=60))
    assert staff.login("dr.weber", passwords["dr.weber"], source=PC) == doctor


def test_wrong_old_password_counts_as_a_failure(staff: StaffDirectory, doctor: StaffMember,
                                                passwords: dict[str, str]) -> None:
    """R9: the change-password form is no way around the lockout."""
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            staff.set_password("dr.weber", "dr.weber", "neues-passwort-1",
                               old_password="falsch-falsch", source=PC)
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", "falsches-passwort", source=PC)


# --- second factor ----------------------------------------------------------------------------


def _enable_totp(staff: StaffDirectory, clock: ManualClock, username: str) -> str:
    password = PASSWORDS[username]
    secret, uri = staff.begin_totp(username, password=password, totp_code=None, source=PC)
    assert secret in uri
    assert not staff.get(username).totp_enabled
    code = totp.code_at_step(secret, totp.time_step(clock.now()))
    assert staff.confirm_totp(username, code, password=password, source=PC).totp_enabled
    clock.advance(timedelta(seconds=30))
    return secret


def _code(secret: str, clock: ManualClock) -> str:
    return totp.code_at_step(secret, totp.time_step(clock.now()))


def test_totp_happy_path(staff: StaffDirectory, doctor: StaffMember, clock: ManualClock,
                         passwords: dict[str, str]) -> None:
    """With TOTP on, login needs the code; a right code lets the member in, once."""
    secret = _enable_totp(staff, clock, "dr.weber")
    with pytest.raises(TotpRequired):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    code = _code(secret, clock)
    assert staff.login("dr.weber", passwords["dr.weber"], code, source=PC) == staff.get("dr.weber")
    with pytest.raises(TotpReused):  # RFC 6238 §5.2: no replay of a used code
        staff.login("dr.weber", passwords["dr.weber"], code, source=PC)
    clock.advance(timedelta(seconds=30))
    staff.login("dr.weber", passwords["dr.weber"], _code(secret, clock), source=PC)


def test_totp_confirm_needs_a_right_code(staff: StaffDirectory, doctor: StaffMember,
                                         clock: ManualClock) -> None:
    """Setting up TOTP only finishes with a code from the app, within 10 minutes."""
    password = PASSWORDS["dr.weber"]
    with pytest.raises(Conflict):
        staff.confirm_totp("dr.weber", "123456", password=password, source=PC)
    secret, _ = staff.begin_totp("dr.weber", password=password, totp_code=None, source=PC)
    with pytest.raises(InvalidInput):
        staff.confirm_totp("dr.weber", "000000x", password=password, source=PC)
    clock.advance(timedelta(minutes=11))
    with pytest.raises(Conflict):  # the set-up lapsed
        staff.confirm_totp("dr.weber", _code(secret, clock), password=password, source=PC)
    assert not staff.get("dr.weber").totp_enabled


def test_totp_set_up_and_replacement_need_password_and_code(
    staff: StaffDirectory, doctor: StaffMember, clock: ManualClock, audit: AuditLog
) -> None:
    """R9, issue 9, defect 2: an open session alone (no password) cannot install an authenticator,
    and over an enabled one not without a current code of it either; the confirmation needs
    the password again; a replacement is audited as such."""
    password = PASSWORDS["dr.weber"]
    with pytest.raises(AuthenticationFailed):
        staff.begin_totp("dr.weber", password="falsches-passwort", totp_code=None, source=PC)
    old_secret = _enable_totp(staff, clock, "dr.weber")
    with pytest.raises(TotpRequired):  # the password alone is not enough while TOTP is on
        staff.begin_totp("dr.weber", password=password, totp_code=None, source=PC)
    with pytest.raises(AuthenticationFailed):
        staff.begin_totp("dr.weber", password=password, totp_code="000000", source=PC)
    new_secret, _ = staff.begin_totp("dr.weber", password=password,
                                     totp_code=_code(old_secret, clock), source=PC)
    with pytest.raises(AuthenticationFailed):
        staff.confirm_totp("dr.weber", _code(new_secret, clock), password="falsches-passwort",
                           source=PC)
    staff.confirm_totp("dr.weber", _code(new_secret, clock), password=password, source=PC)
    clock.advance(timedelta(seconds=30))
    with pytest.raises(AuthenticationFailed):  # the old app's codes count no more
        staff.login("dr.weber", password, _code(old_secret, clock), source=PC)
    assert staff.login("dr.weber", password, _code(new_secret, clock), source=PC)
    assert "staff.totp.replace" in [entry.action for entry in audit.entries(limit=20)]


def test_totp_wrong_code(staff: StaffDirectory, doctor: StaffMember, clock: ManualClock,
                         passwords: dict[str, str]) -> None:
    """A wrong code is an authentication failure and counts towards the lockout."""
    secret = _enable_totp(staff, clock, "dr.weber")
    wrong = "000000" if _code(secret, clock) != "000000" else "111111"
    with pytest.raises(AuthenticationFailed) as raised:
        staff.login("dr.weber", passwords["dr.weber"], wrong, source=PC)
    assert type(raised.value) is AuthenticationFailed
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            staff.login("dr.weber", passwords["dr.weber"], wrong, source=PC)
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", passwords["dr.weber"], wrong, source=PC)


def test_totp_failure_reseals_a_vault_this_login_opened(
    staff: StaffDirectory, doctor: StaffMember, vault: Vault, clock: ManualClock,
    passwords: dict[str, str],
) -> None:
    """A password without the right code never leaves the vault open."""
    secret = _enable_totp(staff, clock, "dr.weber")
    vault.seal()
    with pytest.raises(TotpRequired):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert vault.sealed
    with pytest.raises(AuthenticationFailed):
        staff.login("dr.weber", passwords["dr.weber"], "000000" if _code(secret, clock)
                    != "000000" else "111111", source=PC)
    assert vault.sealed
    staff.login("dr.weber", passwords["dr.weber"], _code(secret, clock), source=PC)
    assert not vault.sealed


def test_totp_failure_leaves_an_open_vault_open(staff: StaffDirectory, doctor: StaffMember,
                                                vault: Vault, clock: ManualClock,
                                                passwords: dict[str, str]) -> None:
    """If the vault was already open, another member's failed code does not seal it."""
    _enable_totp(staff, clock, "dr.weber")
    with pytest.raises(TotpRequired):
        staff.login("dr.weber", passwords["dr.weber"], source=PC)
    assert not vault.sealed


def test_disable_totp(staff: StaffDirectory, doctor: StaffMember, assistant: StaffMember,
                      clock: ManualClock, passwords: dict[str, str]) -> None:
    """A member or an admin switches TOTP off; an assistant cannot for someone else."""
    _enable_totp(staff, clock, "dr.weber")
    with pytest.raises(PermissionDenied):
        staff.disable_totp("mfa.klein", "dr.weber", password=passwords["mfa.klein"],
                           totp_code=None, source=PC)
    assert not staff.disable_totp("admin", "dr.weber", password=passwords["admin"],
                                  totp_code=None, source=PC).totp_enabled
    assert staff.login("dr.weber", passwords["dr.weber"], source=PC) == staff.get("dr.weber")


def _wrong(secret: str, clock: ManualClock) -> str:
    return "000000" if _code(secret, clock) != "000000" else "111111"


def test_disabling_totp_needs_password_and_code(staff: StaffDirectory, doctor: StaffMember,
                                                 vault: Vault, clock: ManualClock,
                                                 passwords: dict[str, str]) -> None:
    """Security (R9): an open session alone cannot switch the second factor off.

    A wrong password is the same error as a wrong login and is audited like one; the right
    password needs a current code as well; with both, TOTP goes off and the change is audited.
    """
    secret = _enable_totp(staff, clock, "dr.weber")
    with pytest.raises(AuthenticationFailed) as wrong_password:
        staff.disable_totp("dr.weber", "dr.weber", password="falsches-passwort",
                           totp_code=_code(secret, clock), source=PC)
    assert type(wrong_password.value) is AuthenticationFailed
    with pytest.raises(TotpRequired):
        staff.disable_totp("dr.weber", "dr.weber", password=passwords["dr.weber"],
                           totp_code=None, source=PC)
    with pytest.raises(AuthenticationFailed) as wrong_code:
        staff.disable_totp("dr.weber", "dr.weber", password=passwords["dr.weber"],
                           totp_code=_wrong(secret, clock), source=PC)
    assert type(wrong_code.value) is AuthenticationFailed
    assert staff.get("dr.weber").totp_enabled
    actions = [doc["action"] for doc in vault.db.table(store.AUDIT).all()]
    assert actions.count("login.failed") == 2 and "staff.totp.disable" not in actions
    member = staff.disable_totp("dr.weber", "dr.weber", password=passwords["dr.weber"],
                                totp_code=_code(secret, clock), source=PC)
    assert not member.totp_enabled
    entries = vault.db.table(store.AUDIT).all()
    assert (entries[-1]["actor"], entries[-1]["action"], entries[-1]["target"]) == (
        "dr.weber", "staff.totp.disable", "dr.weber")


def test_disabling_totp_with_a_used_code_is_refused(staff: StaffDirectory, doctor: StaffMember,
                                                    clock: ManualClock,
                                                    passwords: dict[str, str]) -> None:
    """Security (R9): a code just used to log in (seen over a shoulder) does not count again."""
    secret = _enable_totp(staff, clock, "dr.weber")
    code = _code(secret, clock)
    staff.login("dr.weber", passwords["dr.weber"], code, source=PC)
    with pytest.raises(TotpReused):
        staff.disable_totp("dr.weber", "dr.weber", password=passwords["dr.weber"],
                           totp_code=code, source=PC)
    assert staff.get("dr.weber").totp_enabled


def test_wrong_password_to_disable_totp_counts_towards_the_lockout(
    staff: StaffDirectory, doctor: StaffMember, clock: ManualClock, passwords: dict[str, str],
) -> None:
    """Security (R9): the switch-off form is no way to guess the password around the lockout."""
    secret = _enable_totp(staff, clock, "dr.weber")
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            staff.disable_totp("dr.weber", "dr.weber", password="falsches-passwort",
                               totp_code=_code(secret, clock), source=PC)
    with pytest.raises(AccountLocked):
        staff.disable_totp("dr.weber", "dr.weber", password="falsches-passwort",
                           totp_code=_code(secret, clock), source=PC)
    with pytest.raises(AccountLocked):  # locked even for the right password, at this PC
        staff.disable_totp("dr.weber", "dr.weber", password=passwords["dr.weber"],
                           totp_code=_code(secret, clock), source=PC)
    with pytest.raises(AccountLocked):
        staff.login("dr.weber", passwords["dr.weber"], _code(secret, clock), source=PC)
    assert staff.get("dr.weber").totp_enabled
