"""The install receipt and the update policy it pins (`UpdatePins`), and the decision they force.

The installer writes into the install receipt a "policy" object: the release
public key, the channel (a latest.json URL), whether downgrades are allowed,
and whether a signature is required. `invoke update` takes its key, channel
and downgrade rule from there, and nothing in the environment or on the
command line can loosen them: this updater reads no environment variable for
any of them, verifies a signature on every update whatever the policy says,
refuses a --public-key other than the pinned key, a --channel other than
the pinned channel, and --allow-downgrade when the policy forbids it.

A pin is only worth the file it is written in, so the receipt must be
trustworthy: not a symlink, not writable by group or others (nor its
folder), and owned by root (it and its folder) when the install folder is
root's. Otherwise the update is refused before anything is fetched.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import SignatureError, UpdateError, UsageError
from toolchain.release.signing import parse_public_key

RECEIPT_NAME = "install-receipt.json"


@dataclass(frozen=True)
class UpdatePins:
    public_key: str  # minisign public key text ("" when the installer had none)
    channel: str  # URL or path of a latest.json ("" when none was pinned)
    allow_downgrade: bool
    require_signature: bool


@dataclass(frozen=True)
class Receipt:
    path: Path
    install_dir: Path
    binaries: tuple[str, ...]
    version: str
    data_files: tuple[Path, ...]
    pins: UpdatePins | None  # None: a receipt from before an update policy was pinned

    @property
    def binary(self) -> Path:
        return self.install_dir / self.binaries[0]


@dataclass(frozen=True)
class Decision:
    """What the update may do, after the pinned policy had its say."""

    public_key: str
    channel: str
    allow_downgrade: bool
    pinned_in: Path | None


def _not_a_receipt(path: Path, why: str) -> UsageError:
    return UsageError(f"{path} is not an install receipt ({why})", hint="pass --binary PATH instead, or reinstall")


def _pins_error(path: Path, why: str) -> UpdateError:
    return UpdateError(
        f"the pinned update policy in {path} {why}", hint="reinstall with the release's installer to pin a valid one"
    )


def key_text(line: str) -> str:
    """A policy's key as minisign key text: the installers pin the key's base64 line alone."""
    line = line.strip()
    if not line or line.startswith("untrusted comment:"):
        return line + "\n" if line else ""
    return f"untrusted comment: pinned minisign public key\n{line}\n"


def _parse_pins(path: Path, raw: Any) -> UpdatePins:
    if not isinstance(raw, dict):
        raise _pins_error(path, "is not an object")
    kinds = {"public_key": str, "channel": str, "allow_downgrade": bool, "require_signature": bool}
    for name, kind in kinds.items():
        if not isinstance(raw.get(name), kind):
            raise _pins_error(path, f"has no {kind.__name__} {name!r}")
    pins = UpdatePins(key_text(raw["public_key"]), raw["channel"], raw["allow_downgrade"], raw["require_signature"])
    if pins.public_key:
        try:
            parse_public_key(pins.public_key, f"the key pinned in {path}")
        except SignatureError as exc:
            raise _pins_error(path, f"holds a bad key: {exc.message}") from None
    return pins


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_trusted(path: Path, install_dir: Path) -> None:
    """Refuse a receipt whose pins someone other than its owner (or root) could have changed."""
    if path.is_symlink():
        raise UpdateError(
            f"install receipt {path} is a symlink, so its pinned update policy cannot be trusted",
            hint="replace it with the file itself (or reinstall)",
        )
    if os.name == "nt":
        return  # NTFS ACLs are not modes: the installer's folder permissions stand
    try:
        install_owner = install_dir.stat().st_uid
    except OSError:
        install_owner = -1
    for item, name in ((path, "install receipt"), (path.parent, "folder of the install receipt")):
        info = item.stat()
        if info.st_mode & 0o022 and not (item.is_dir() and info.st_mode & stat.S_ISVTX):
            raise UpdateError(
                f"the {name} {item} is writable by group or others, so its pinned update policy cannot be trusted",
                hint=f"as its owner, run `chmod go-w {item}` (or reinstall)",
            )
        if install_owner == 0 and info.st_uid != 0:
            raise UpdateError(
                f"the {name} {item} belongs to {_owner(info.st_uid)} but {install_dir} belongs to root, so a "
                "non-root user may have changed its pinned update policy",
                hint=f"reinstall as root (or, after checking it, `chown root: {item}`)",
            )


def read_receipt(path: Path) -> Receipt:
    """The receipt, its pinned policy checked for trust."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read install receipt {path}: {exc.strerror}", hint="check the path") from None
    except ValueError:
        raise _not_a_receipt(path, "not JSON") from None
    if not isinstance(document, dict):
        raise _not_a_receipt(path, "not a JSON object")
    binaries = document.get("binaries")
    if not isinstance(binaries, list) or not binaries or not all(isinstance(b, str) and b for b in binaries):
        raise _not_a_receipt(path, "no binaries")
    if not isinstance(document.get("install_dir"), str):
        raise _not_a_receipt(path, "no install_dir")
    install_dir = Path(document["install_dir"])
    data = document.get("data_files", [])
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise _not_a_receipt(path, "data_files is not a list of paths")
    # Checked even without a policy: removing one from a receipt others can write is a bypass too.
    check_trusted(path, install_dir)
    pins = _parse_pins(path, document["policy"]) if "policy" in document else None
    return Receipt(path, install_dir, tuple(binaries), str(document.get("version", "")),
                   tuple(Path(d) for d in data), pins)  # fmt: skip


def receipt_candidates(binary: Path) -> list[Path]:
    """Where the installers put the receipt of `binary`'s app. The homes come
    from the user database, not $HOME: unsetting or moving the environment
    cannot hide a pinned policy; $XDG_CONFIG_HOME only adds a place to look."""
    app = binary.name.removesuffix(".exe")
    homes = []
    for uid in (os.geteuid(), binary.stat().st_uid):
        try:
            homes.append(Path(pwd.getpwuid(uid).pw_dir) / ".config")
        except KeyError:
            continue
    if os.environ.get("XDG_CONFIG_HOME"):
        homes.append(Path(os.environ["XDG_CONFIG_HOME"]))
    return list(dict.fromkeys(home / app / RECEIPT_NAME for home in homes))


def find_receipt(binary: Path) -> Receipt | None:
    """The receipt that installed `binary`, if an installer wrote one."""
    wanted = binary.resolve()
    for candidate in receipt_candidates(binary):
        if not candidate.is_file():
            continue
        try:
            found = read_receipt(candidate)
        except UsageError:
            continue  # not a receipt at all: it pins nothing
        if any((found.install_dir / name).resolve() == wanted for name in found.binaries):
            return found
    return None


def decide(
    pins: UpdatePins | None,
    pinned_in: Path | None,
    *,
    given_key: str,
    configured_key: str,
    channel: str,
    allow_downgrade: bool,
) -> Decision:
    """Merge the command line into the pinned policy: it may only restate it.

    given_key: the text of --public-key ("" when not given); configured_key:
    the project's [sign] public key ("" when none), used only when nothing
    is pinned."""
    if pins is None or pinned_in is None:
        return Decision(given_key or configured_key, channel, allow_downgrade, None)
    key = pins.public_key
    if key and given_key and parse_public_key(given_key, "--public-key") != parse_public_key(key):
        theirs = parse_public_key(given_key, "--public-key").key_id[::-1].hex().upper()
        ours = parse_public_key(key).key_id[::-1].hex().upper()
        raise UpdateError(
            f"--public-key is key {theirs}, but this installation pins key {ours} in {pinned_in}",
            hint="drop --public-key; a new signing key needs a reinstall with the new release's installer",
        )
    if pins.channel and channel and channel != pins.channel:
        raise UpdateError(
            f"--channel {channel} is not the channel pinned in {pinned_in} ({pins.channel})",
            hint="drop --channel; another channel needs a reinstall from it",
        )
    if allow_downgrade and not pins.allow_downgrade:
        raise UpdateError(
            f"--allow-downgrade: the update policy pinned in {pinned_in} forbids downgrades",
            hint="install the older release with its own installer as the receipt's owner, or set the policy's "
            "allow_downgrade to true there",
        )
    return Decision(key or given_key or configured_key, channel or pins.channel, allow_downgrade, pinned_in)
