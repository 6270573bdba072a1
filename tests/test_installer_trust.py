"""The shell installer follows the same trust model as the updater (issue 29):
key lists signed by an offline root (toolchain.release.keylist), staged
rollout and withdrawal (toolchain.update.rollout). Real installers under
dash, bash and busybox sh, real minisign, the demo app's two builds (0.1.0 at
schema level 1, 0.2.0 at level 3) served on loopback: each test serves its own
tree laid out as S3's channel, `latest.json` and `keys/` above one folder per
release, so each can move the channel and its lists as a publisher would."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import demo_contract
from github_standin import GitHubStandIn
from test_installer_upgrade import BACKUP, DATA_PATTERN, Machine, Releases, _served, host_builds
from test_installers import SHELLS, PsScript, error_line, powershell_errors

from toolchain import REPO_ROOT
from toolchain.release.folder import package_release
from toolchain.release.github import GitHubTarget
from toolchain.release.installers import InstallerUpdate, render_installers
from toolchain.release.keylist import KeyList, ListedKey, folder_key_files, key_id_hex, write_keylist
from toolchain.release.latest import LATEST_NAME, rewritten
from toolchain.release.publish import ReleaseInfo, publish_github
from toolchain.release.signing import SecretKey, generate, sign_file
from toolchain.update.rollout import bucket, selected

ROOT_KEYS = ("r1", "r2", "r9")
RELEASE_KEYS = ("k1", "k2")


@dataclass(frozen=True)
class History:
    """The keys, the lists a publisher wrote over time (keys/N.json and signatures, one folder
    per list) and the release folders, packaged once for the module."""

    keys: dict[str, SecretKey]
    lists: Path
    folders: Path

    def id(self, name: str) -> str:
        return key_id_hex(self.keys[name].key_id)


def _write_list(history: Path, version: int, roots: list[SecretKey], releases: list[SecretKey],
                signers: list[SecretKey], revoked: tuple[str, ...] = (), days: int = 365,
                name: str = "") -> None:  # fmt: skip
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    made = KeyList(version, tuple(r.public_key() for r in roots), 1,
                   tuple(ListedKey(k.public_key(), "release", expires) for k in releases), revoked)  # fmt: skip
    write_keylist(history / (name or str(version)), made, signers)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    keys = {name: generate() for name in (*ROOT_KEYS, *RELEASE_KEYS)}
    r1, r2, r9, k1, k2 = (keys[n] for n in ("r1", "r2", "r9", "k1", "k2"))
    lists = tmp_path_factory.mktemp("lists")
    # 1: root R1, release key K1; signed by R1 and by K1 (the key installs pinned before roots).
    _write_list(lists, 1, [r1], [k1], [r1, k1])
    _write_list(lists, 2, [r1], [k2], [r1])  # K1 -> K2
    _write_list(lists, 3, [r2], [k2], [r1, r2])  # R1 -> R2: the old and the new root sign it
    _write_list(lists, 4, [r2], [k2], [r2], revoked=(key_id_hex(k1.key_id),))
    _write_list(lists, 5, [r9], [k1], [r9])  # by a root nobody trusts
    _write_list(lists, 2, [r1], [k1], [r1], days=-1, name="2-expired")  # K1 kept, but past its expiry
    old, new = host_builds(tmp_path_factory)
    folders = tmp_path_factory.mktemp("folders")
    with_backup = InstallerUpdate((DATA_PATTERN,), BACKUP, checks=demo_contract()["update"].checks)
    # Each release is packaged with the lists written before it: its installers bake the newest.
    for name, build, key, known in (
        ("0.1.0-legacy", old, k1, 0),
        ("0.1.0", old, k1, 1),
        ("0.2.0-k1", new, k1, 0),
        ("0.2.0", new, k2, 3),
    ):
        folder = folders / name
        shutil.copytree(build, folder, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
        for version in range(1, known + 1):
            shutil.copytree(lists / str(version) / "keys", folder / "keys", dirs_exist_ok=True)
        package_release(folder, key, "", REPO_ROOT, schema_command=demo_contract()["schema_command"],
                        update=with_backup)  # fmt: skip
    return History(keys, lists, folders)


@dataclass
class Channel:
    """One test's served tree: the release folders, and the channel (latest.json, keys/) above them."""

    history: History
    releases: Releases

    def lists(self, *versions: int | str) -> None:
        """Publish these key lists (and only these) beside the channel."""
        shutil.rmtree(self.releases.root / "keys", ignore_errors=True)
        for version in versions:
            shutil.copytree(self.history.lists / str(version) / "keys", self.releases.root / "keys", dirs_exist_ok=True)

    def point(self, release: str, signer: str, rollout: int | None = None, withdrawn: tuple[str, ...] = ()) -> None:
        """Point the channel at a release (as publish --s3 does), re-signed with a rollout and withdrawals."""
        text = (self.history.folders / release / LATEST_NAME).read_bytes()
        pointer = self.releases.root / LATEST_NAME
        pointer.write_bytes(rewritten(text, rollout=rollout, withdrawn=withdrawn or None))
        sign_file(pointer, self.history.keys[signer], f"file:{LATEST_NAME}")


@pytest.fixture
def channel(history: History, tmp_path: Path) -> Iterator[Channel]:
    root = tmp_path / "served"
    shutil.copytree(history.folders, root)
    with _served(root) as url:
        yield Channel(history, Releases(root, url, history.keys["k1"]))


def machine_for(channel: Channel, tmp_path: Path, name: str, shell: str = "dash") -> Machine:
    home = tmp_path / name / "home"
    home.mkdir(parents=True)
    return Machine(home, channel.releases, shell)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def trusted(machine: Machine) -> dict[str, object]:
    trust = machine.receipt()["trust"]
    assert isinstance(trust, dict)
    return trust


def roots_of(machine: Machine, history: History) -> set[str]:
    lines = trusted(machine)["roots"]
    assert isinstance(lines, list)
    names = {n: history.keys[n].public_key().render().splitlines()[1] for n in ROOT_KEYS}
    return {n for n, line in names.items() if line in lines}


def assert_unchanged(machine: Machine, digest: str, receipt: dict[str, object]) -> None:
    assert machine.digest() == digest and machine.receipt() == receipt
    assert not (machine.config / "snapshot").exists() and not (machine.config / "upgrade-journal").exists()


# --- key lists --------------------------------------------------------------------------------


def test_rotation_revocation_and_an_unknown_root(channel: Channel, tmp_path: Path) -> None:
    history = channel.history
    machine = machine_for(channel, tmp_path, "one")
    # Installed under root R1 with K1: the receipt pins list 1 (its root) and an install id.
    channel.lists(1)
    channel.point("0.1.0", "k1")
    ok(machine.install("0.1.0"))
    receipt = machine.receipt()
    assert trusted(machine)["version"] == 1 and roots_of(machine, history) == {"r1"}
    install_id = receipt["install_id"]
    assert isinstance(install_id, str) and len(install_id) == 32
    # Python reads the list the installer wrote as the updater's trust state.
    from toolchain.release.keylist import parse_keylist

    assert parse_keylist(json.dumps(trusted(machine)).encode(), "receipt").version == 1

    # K1 -> K2 (list 2) and R1 -> R2 (list 3, signed by both): 0.2.0 is signed by K2.
    channel.lists(1, 2, 3)
    channel.point("0.2.0", "k2")
    upgraded = machine.install("0.2.0", "-v")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "followed key list(s) 2, 3" in upgraded.stderr
    assert machine.tally("--version").stdout.split()[-1] == "0.2.0"
    assert trusted(machine)["version"] == 3 and roots_of(machine, history) == {"r2"}
    assert machine.receipt()["install_id"] == install_id, "the install id is kept across upgrades"

    # List 4 revokes K1: a release K1 signed is refused, and nothing changes.
    channel.lists(1, 2, 3, 4)
    before, receipt = machine.digest(), machine.receipt()
    refused = machine.install("0.2.0-k1")
    assert refused.returncode == 1
    line = error_line(refused)
    assert f"signed by key {history.id('k1')}, which key list 4 revokes" in line and "nothing was installed" in line
    assert_unchanged(machine, before, receipt)

    # List 5 is signed by R9, a root this install never trusted: refused, its trust stays at list 3.
    channel.lists(1, 2, 3, 4, 5)
    refused = machine.install("0.2.0")
    assert refused.returncode == 1
    line = error_line(refused)
    assert "key list 5" in line and f"is signed by 0 of the roots you trust ({history.id('r2')})" in line
    assert_unchanged(machine, before, receipt)

    # A fresh install of an old installer (it carries list 1, root R1) follows to list 4 and
    # refuses its own release, signed by K1.
    fresh = machine_for(channel, tmp_path, "fresh")
    channel.lists(1, 2, 3, 4)
    refused = fresh.install("0.1.0")
    assert refused.returncode == 1 and "which key list 4 revokes" in error_line(refused)
    assert not fresh.binary.exists() and not (fresh.config / "install-receipt.json").exists()


def test_an_expired_release_key_is_refused(channel: Channel, tmp_path: Path) -> None:
    machine = machine_for(channel, tmp_path, "expired")
    channel.lists(1)
    channel.point("0.1.0", "k1")
    ok(machine.install("0.1.0"))
    before, receipt = machine.digest(), machine.receipt()
    channel.lists(1, "2-expired")
    refused = machine.install("0.2.0-k1")
    assert refused.returncode == 1
    line = error_line(refused)
    assert f"is signed by key {channel.history.id('k1')}, which expired at" in line and "nothing was installed" in line
    assert_unchanged(machine, before, receipt)


@pytest.mark.parametrize("shell", ["bash", "busybox"])
def test_a_root_rotation_under(shell: str, channel: Channel, tmp_path: Path) -> None:
    machine, other = machine_for(channel, tmp_path, shell, shell), machine_for(channel, tmp_path, "other", shell)
    channel.lists(1)
    channel.point("0.1.0", "k1")
    ok(machine.install("0.1.0"))
    ok(other.install("0.1.0"))
    channel.lists(1, 2, 3)
    channel.point("0.2.0", "k2")
    ok(machine.install("0.2.0"))
    assert trusted(machine)["version"] == 3 and roots_of(machine, channel.history) == {"r2"}
    # A root rotation its new root did not sign is refused.
    (channel.releases.root / "keys" / f"3.json.{channel.history.id('r2')}.minisig").unlink()
    refused = other.install("0.2.0")
    assert refused.returncode == 1 and "a root rotation: its new roots must sign it too" in error_line(refused)
    assert trusted(other)["version"] == 1


def test_a_legacy_install_moves_to_the_root_scheme(channel: Channel, tmp_path: Path) -> None:
    history = channel.history
    machine = machine_for(channel, tmp_path, "legacy")
    # Installed before the channel had key lists: the receipt pins K1 alone.
    channel.point("0.1.0-legacy", "k1")
    ok(machine.install("0.1.0-legacy"))
    assert "trust" not in machine.receipt()
    policy = machine.receipt()["policy"]
    assert isinstance(policy, dict) and policy["public_key"] == history.keys["k1"].public_key().render().splitlines()[1]
    # A first list signed by R1 alone is not one its pinned K1 approved.
    channel.lists(1)
    (channel.releases.root / "keys" / f"1.json.{history.id('k1')}.minisig").unlink()
    channel.point("0.2.0-k1", "k1")
    before, receipt = machine.digest(), machine.receipt()
    refused = machine.install("0.2.0-k1")
    assert refused.returncode == 1 and f"signed by 0 of the roots you trust ({history.id('k1')})" in error_line(refused)
    assert_unchanged(machine, before, receipt)
    # List 1 signed by K1 and R1: the upgrade moves the install to root R1.
    channel.lists(1)
    ok(machine.install("0.2.0-k1"))
    assert trusted(machine)["version"] == 1 and roots_of(machine, history) == {"r1"}
    assert machine.tally("--version").stdout.split()[-1] == "0.2.0"


# --- rollout and withdrawal ---------------------------------------------------------------------


def rendered_functions(tmp_path: Path) -> Path:
    """The real installer's functions without its last line (`main "$@"`), to source in a shell."""
    text = render_installers("tally", "0.1.0", [], "http://127.0.0.1:9")["tally-installer.sh"]
    assert text.rstrip().endswith('main "$@"')
    library = tmp_path / "installer-functions.sh"
    library.write_text(text.rstrip().removesuffix('main "$@"'))
    return library


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_shell_bucket_is_the_updaters(shell: str, tmp_path: Path) -> None:
    draw = random.Random(2929)
    ids = [f"{draw.getrandbits(128):032x}" for _ in range(1000)]
    script = (
        f'. "{rendered_functions(tmp_path)}"; TMP_DIR=$(mktemp -d); HASH_TOOL=$(hash_tool); '
        'for id in "$@"; do rollout_bucket "$id" 0.2.0; done; rm -rf "$TMP_DIR"'
    )
    result = subprocess.run([*SHELLS[shell], "-c", script, "buckets", *ids], capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [int(b) for b in result.stdout.split()] == [int(bucket(i, "0.2.0")) for i in ids]
    # The whole part decides as the updater's float does, at every share.
    got = dict(zip(ids, map(int, result.stdout.split()), strict=True))
    for share in (0, 1, 10, 50, 99, 100):
        assert {i for i in ids if got[i] < share} == {i for i in ids if selected(i, "0.2.0", share)}


def with_install_id(machine: Machine, install_id: str) -> None:
    """Name the install id in the receipt, as `invoke update` does for a copy it finds without one."""
    path = machine.config / "install-receipt.json"
    document = json.loads(path.read_text())
    document["install_id"] = install_id
    path.write_text(json.dumps(document, indent=2) + "\n")


def test_rollout_pause_and_the_first_install(channel: Channel, tmp_path: Path) -> None:
    draw = random.Random(10)
    candidates = [f"{draw.getrandbits(128):032x}" for _ in range(200)]
    inside = next(i for i in candidates if bucket(i, "0.2.0") < 10)
    outside = next(i for i in candidates if bucket(i, "0.2.0") >= 10)
    channel.point("0.1.0-legacy", "k1")
    machines = {}
    for name, install_id in (("inside", inside), ("outside", outside)):
        machines[name] = machine_for(channel, tmp_path, name)
        ok(machines[name].install("0.1.0-legacy"))
        with_install_id(machines[name], install_id)
    saved = {name: (m.digest(), m.receipt()) for name, m in machines.items()}

    # 0 % pauses every upgrade: one line, exit 0, nothing changed.
    channel.point("0.2.0-k1", "k1", rollout=0)
    for name, machine in machines.items():
        out = ok(machine.install("0.2.0-k1"))
        assert "rollout is paused (0%)" in out and "nothing was changed" in out
        assert_unchanged(machine, *saved[name])
    # A first install takes the newest whatever the share.
    fresh = machine_for(channel, tmp_path, "fresh")
    ok(fresh.install("0.2.0-k1"))
    assert fresh.tally("--version").stdout.split()[-1] == "0.2.0"

    # 10 %: the install whose bucket is under 10 upgrades, the other waits.
    channel.point("0.2.0-k1", "k1", rollout=10)
    ok(machines["inside"].install("0.2.0-k1"))
    assert machines["inside"].tally("--version").stdout.split()[-1] == "0.2.0"
    assert machines["inside"].receipt()["install_id"] == inside
    out = ok(machines["outside"].install("0.2.0-k1"))
    assert "rolling out to 10% of installs, not yet this one" in out
    assert_unchanged(machines["outside"], *saved["outside"])
    # At 100 % it takes it too.
    channel.point("0.2.0-k1", "k1", rollout=100)
    ok(machines["outside"].install("0.2.0-k1"))
    assert machines["outside"].tally("--version").stdout.split()[-1] == "0.2.0"


def test_a_withdrawn_version_is_not_installed(channel: Channel, tmp_path: Path) -> None:
    machine = machine_for(channel, tmp_path, "withdrawn")
    channel.point("0.1.0-legacy", "k1")
    ok(machine.install("0.1.0-legacy"))
    before, receipt = machine.digest(), machine.receipt()
    # `invoke withdraw --version 0.2.0` on 0.1.0's folder: the channel points back at 0.1.0.
    channel.point("0.1.0-legacy", "k1", withdrawn=("0.2.0",))
    refused = machine.install("0.2.0-k1")
    assert refused.returncode == 1
    line = error_line(refused)
    assert "tally 0.2.0 was withdrawn by its publisher" in line and "offers 0.1.0" in line
    assert_unchanged(machine, before, receipt)
    fresh = machine_for(channel, tmp_path, "fresh")
    assert fresh.install("0.2.0-k1").returncode == 1
    assert not fresh.binary.exists()
    # TALLY_CHANNEL_URL names a channel elsewhere (here: the pointer moved into channel/).
    elsewhere = channel.releases.root / "channel"
    elsewhere.mkdir()
    for name in (LATEST_NAME, f"{LATEST_NAME}.minisig"):
        (channel.releases.root / name).rename(elsewhere / name)
    named = {"TALLY_CHANNEL_URL": f"{channel.releases.url}/channel/{LATEST_NAME}"}
    refused = machine.install("0.2.0-k1", env=named)
    assert refused.returncode == 1 and "was withdrawn by its publisher" in error_line(refused)
    assert_unchanged(machine, before, receipt)
    missing = machine.install("0.2.0-k1", env={"TALLY_CHANNEL_URL": f"{channel.releases.url}/nowhere.json"})
    assert missing.returncode == 1 and "cannot download the channel" in error_line(missing)
    assert_unchanged(machine, before, receipt)
    # Without it, nothing above the download folder says 0.2.0 is withdrawn: its own channel offers it.
    elsewhere_machine = machine_for(channel, tmp_path, "elsewhere")
    ok(elsewhere_machine.install("0.2.0-k1"))
    for name in (LATEST_NAME, f"{LATEST_NAME}.minisig"):
        (elsewhere / name).rename(channel.releases.root / name)
    # The withdrawal is signed: the same channel re-signed by another key is refused.
    pointer = channel.releases.root / LATEST_NAME
    sign_file(pointer, channel.history.keys["k2"], f"file:{LATEST_NAME}")
    refused = machine.install("0.2.0-k1")
    assert refused.returncode == 1 and "is not signed by the key" in error_line(refused)


# --- the PowerShell installer (no PowerShell here: its structure, parsed with tree-sitter) ---------


def ps1_trust_problems(source: bytes) -> list[str]:
    """What keeps the PowerShell installer from following the trust model as the shell one does."""
    ps = PsScript(source)
    wanted = ("read-channel", "sync-keylists", "assert-quorum", "get-authorisedkey", "get-rolloutbucket",
              "assert-signature", "install-app")  # fmt: skip
    missing = [name for name in wanted if name not in ps.functions]
    if missing:
        return [f"no function {name}" for name in missing]
    problems = []

    def guarded(function: str, condition: tuple[str, ...], inside: str) -> bool:
        """An if in `function` whose condition holds every part of `condition` and whose body holds `inside`."""
        return any(
            all(part in ps.text(ps.child(n, "pipeline")) for part in condition) and inside in ps.text(n)
            for n in ps.nodes(ps.functions[function])
            if n.type == "if_statement"
        )

    if not any(c.name == "sync-keylists" for c in ps.function_calls("read-channel")):
        problems.append("read-channel does not follow the key lists")
    rotation = "Assert-Quorum -Path $path -Number $next -Roots $candidate"
    if not guarded("sync-keylists", ("Get-RootIds -List $candidate", "-ne"), rotation):
        problems.append("sync-keylists does not make a root rotation's new roots sign it too")
    if not guarded("assert-quorum", ("$seen.Count", "-lt $Roots.threshold"), "Stop-Install"):
        problems.append("assert-quorum does not refuse a list short of its threshold")
    if not guarded("get-authorisedkey", ("$Trust.revoked", "-contains $Id"), "revokes"):
        problems.append("get-authorisedkey does not refuse a revoked key")
    if not guarded("read-channel", ("$latest.withdrawn", "-contains $Version"), "Stop-Install"):
        problems.append("read-channel does not refuse a withdrawn version")
    if not guarded("read-channel", ("$share -eq 0",), "exit 0"):
        problems.append("read-channel does not pause at 0 %")
    if not guarded("read-channel", ("$bucket -ge $share",), "exit 0") or not any(
        c.name == "get-rolloutbucket" and c.args.get("-installid") == "$State.InstallId"
        for c in ps.function_calls("read-channel")
    ):
        problems.append("read-channel does not hold back an install whose bucket is not under the share")
    bucket = ps.text(ps.functions["get-rolloutbucket"])
    if not ("ComputeHash" in bucket and "`0" in bucket and bucket.count("-shr 32") == 2):
        problems.append("get-rolloutbucket is not the updater's bucket (sha256 of ID NUL VERSION, 8 bytes, x100)")
    keyed = [c for c in ps.function_calls("assert-signature") if c.args.get("-p") == "$key"]
    authorised = [c for c in ps.function_calls("assert-signature")
                  if c.name == "get-authorisedkey" and c.args.get("-roles") == "@('release')"]  # fmt: skip
    if not keyed or not authorised or authorised[0].start > keyed[0].start:
        problems.append("assert-signature does not check a release by the key its list authorises")
    calls = ps.function_calls("install-app")
    channel = [c.start for c in calls if c.name == "read-channel"]
    policy = [c.start for c in calls if c.name == "assert-policy"]
    download = [c.start for c in calls if c.name == "invoke-webrequest"]
    if not channel or not policy or not download or not channel[0] < min(policy) < min(download):
        problems.append("install-app does not read the channel, then the policy, before downloading")
    install = ps.text(ps.functions["install-app"])
    if "install_id   = $pinned.InstallId" not in install or "$receipt['trust'] = $channel.Trust" not in install:
        problems.append("install-app does not write the install id and the trusted key list into the receipt")
    return problems


def test_the_powershell_installer_follows_the_same_trust_model(history: History) -> None:
    assert ps1_trust_problems((history.folders / "0.2.0" / "tally-installer.ps1").read_bytes()) == []


PS1_TRUST_BREAKAGES = {
    "no key lists": ("        $trust = Sync-KeyLists", "        $trust = $trust # Sync-KeyLists"),
    "no root rotation check": ("if ((Get-RootIds -List $candidate) -ne (Get-RootIds -List $Trust)) {", "if ($false) {"),
    "no quorum": ("if ($seen.Count -lt $Roots.threshold) {", "if ($false) {"),
    "revoked accepted": ("if (@($Trust.revoked) -contains $Id) {", "if ($false) {"),
    "withdrawn installed": ("if (@($latest.withdrawn) -contains $Version) {", "if ($false) {"),
    "no pause": ("if ($share -eq 0) {", "if ($false) {"),
    "no rollout": ("if ($bucket -ge $share) {", "if ($false) {"),
    "bucket without the version": ('"$InstallId`0$ForVersion"', '"$InstallId"'),
    "keyed release by the baked key": ("-V -q -P $key -m $Path", "-V -q -P $PublicKey -m $Path"),
    "no install id": ("            install_id   = $pinned.InstallId\n", ""),
    "no trust pinned": ("        if ($channel.Keyed) { $receipt['trust'] = $channel.Trust }\n", ""),
    "channel after the download": (
        "        $channel = Read-Channel -State $pinned -BaseUrl $baseUrl -Temp $temp -Timeout $timeout\n",
        "",
    ),
}


@pytest.mark.parametrize("breakage", sorted(PS1_TRUST_BREAKAGES))
def test_the_powershell_trust_checks_notice_a_missing_step(history: History, breakage: str) -> None:
    old, new = PS1_TRUST_BREAKAGES[breakage]
    text = (history.folders / "0.2.0" / "tally-installer.ps1").read_text()
    assert text.count(old) == 1, f"the installer no longer holds {old!r}: update PS1_TRUST_BREAKAGES"
    broken = text.replace(old, new).encode()
    assert powershell_errors(broken) == [], "the broken script still parses: only its structure changed"
    assert ps1_trust_problems(broken) != []


def test_the_updater_starts_from_the_trust_the_installer_pinned(channel: Channel, tmp_path: Path) -> None:
    """A fresh install from 0.2.0's installer pins list 3 (root R2) in its receipt. `invoke update`
    on that copy (its pinned channel, no --root) follows the lists from there: from the one key
    the receipt also pins (K2), list 1 (signed by R1 and K1) would be refused."""
    from conftest import run_invoke

    channel.lists(1, 2, 3)
    channel.point("0.2.0", "k2")
    machine = machine_for(channel, tmp_path, "updater")
    ok(machine.install("0.2.0"))
    assert trusted(machine)["version"] == 3
    checked = run_invoke("update", "--check", "--json", "--binary", str(machine.binary), "--receipt",
                         str(machine.config / "install-receipt.json"), env=machine.env())  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["action"] == "current", checked.stdout


# --- a channel on GitHub Releases (the strict local stand-in: GitHub cannot be reached here) ----


GITHUB_TOKEN = "ghp_standin_secret_token_0123456789"
GITHUB_REPO = "acme/tally"


def publish_to_github(standin: GitHubStandIn, history: History, release: str) -> None:
    """Publish a packaged folder as `invoke publish --github` does after its guardrail (the real
    publish_github and client): its files as assets, its keys/ as flat keys-* assets."""
    folder = history.folders / release
    files = tuple(sorted(p for p in folder.iterdir() if p.is_file()))
    lists = tuple(folder_key_files(folder).items())
    version = json.loads((folder / LATEST_NAME).read_text())["version"]
    target = GitHubTarget(GITHUB_REPO, api_url=standin.url, uploads_url=standin.url)
    publish_github(ReleaseInfo("tally", version, files, lists), target, replace=False, notes="", token=GITHUB_TOKEN)


def test_a_github_channel_follows_the_key_lists_from_flat_assets(history: History, tmp_path: Path) -> None:
    """Installed from a GitHub release folder (…/releases/download/v0.1.0), a copy's channel is
    GitHub's latest release, and its key lists are that release's keys-N.json assets. After K1 -> K2
    and R1 -> R2 (lists 2 and 3, published with 0.2.0), the installer and the updater both follow
    them there; read from keys/2.json (S3's layout), 0.2.0 would be refused as signed by an
    unknown key."""
    from conftest import run_invoke

    releases = Releases(history.folders, "", history.keys["k1"])
    machine, updater = (Machine(tmp_path / name / "home", releases, "dash") for name in ("installer", "updater"))
    for one in (machine, updater):
        one.home.mkdir(parents=True)
    with GitHubStandIn(GITHUB_TOKEN, GITHUB_REPO) as standin:
        site = f"{standin.url}/{GITHUB_REPO}/releases"
        publish_to_github(standin, history, "0.1.0")
        for one in (machine, updater):
            ok(one.install("0.1.0", env={"TALLY_DOWNLOAD_URL": f"{site}/download/v0.1.0"}))
            assert trusted(one)["version"] == 1 and roots_of(one, history) == {"r1"}
        publish_to_github(standin, history, "0.2.0")
        checked = run_invoke("update", "--check", "--json", "--binary", str(updater.binary), "--receipt",
                             str(updater.config / "install-receipt.json"), env=updater.env())  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        status = json.loads(checked.stdout)
        assert (status["action"], status["offered"]) == ("update", "0.2.0"), checked.stdout
        upgraded = machine.install("0.2.0", "-v", env={"TALLY_DOWNLOAD_URL": f"{site}/download/v0.2.0"})
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"followed key list(s) 2, 3 of {site}/latest/download/keys-N.json" in upgraded.stderr
        assert trusted(machine)["version"] == 3 and roots_of(machine, history) == {"r2"}
        assert machine.tally("--version").stdout.split()[-1] == "0.2.0"


LAYOUT_SAMPLES = (
    "https://github.com/acme/tally/releases/download/v0.2.0",
    "https://github.com/acme/tally/releases/latest/download",
    "https://ghe.example.com/acme/tally/releases/download/tally-v1.0.0",
    "https://bucket.s3.amazonaws.com/downloads/tally/0.2.0",
    "http://127.0.0.1:8080/tally/0.2.0",
)


def test_the_powershell_installer_maps_github_folders_as_channel_layout_does(history: History) -> None:
    """No PowerShell here: the installer's two patterns (.NET regex, the subset Python's re shares)
    are run in Python over sample folders and must agree with toolchain.release.channel_layout."""
    import re

    from toolchain.release.channel_layout import keys_prefix, pointer_candidates

    ps = PsScript((history.folders / "0.2.0" / "tally-installer.ps1").read_bytes())
    prefix_body = ps.text(ps.functions["get-keysprefix"])
    (prefix_pattern,) = re.findall(r"\$Base -match '([^']+)'", prefix_body)
    channel_body = ps.text(ps.functions["read-channel"])
    release_pattern, latest_pattern = re.findall(r"\$folder -match '([^']+)'", channel_body)
    assert "Get-KeysPrefix -Base $base" in channel_body
    for folder in LAYOUT_SAMPLES:
        github = re.search(prefix_pattern, folder, re.I) is not None
        assert keys_prefix(folder) == (f"{folder}/keys-" if github else f"{folder}/keys/"), folder
        if match := re.search(release_pattern, folder, re.I):
            above = f"{match.group(1)}/releases/latest/download/latest.json"
        elif re.search(latest_pattern, folder, re.I):
            above = f"{folder}/latest.json"
        else:
            above = f"{folder.rsplit('/', 1)[0]}/latest.json"
        assert pointer_candidates(folder)[0] == above, folder


def test_the_shell_keys_prefix_is_channel_layouts(tmp_path: Path) -> None:
    from toolchain.release.channel_layout import keys_prefix

    library = rendered_functions(tmp_path)
    for folder in LAYOUT_SAMPLES:
        said = subprocess.run(["dash", "-c", f'. "{library}"; keys_prefix "$1"', "sh", folder],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert said == keys_prefix(folder), folder


def test_an_install_id_without_od_or_cut(tmp_path: Path) -> None:
    """The install id falls back to a hash of what differs between runs when od cannot read
    /dev/urandom, with only the tools the installer needs anyway (no cut)."""
    library = rendered_functions(tmp_path)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("awk", "sha256sum", "tr", "date", "uname"):
        found = shutil.which(tool)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    work = tmp_path / "work"
    work.mkdir()
    script = f'. "{library}"; HASH_TOOL=sha256sum; TMP_DIR="{work}"; new_install_id; new_install_id'
    made = subprocess.run([shutil.which("dash") or "dash", "-c", script], env={"PATH": str(tools)},
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0 and made.stderr == "", made.stderr
    first, second = made.stdout.split()
    assert len(first) == 32 and int(first, 16) >= 0 and first != second
