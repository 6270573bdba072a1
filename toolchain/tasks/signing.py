"""invoke keygen, sign, verify (a release folder's signatures), rotate-key and revoke-key (write
and sign the next key list, toolchain.release.keylist)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.tasks.base import out_folder, required, task

if TYPE_CHECKING:
    from toolchain.release.signing import PublicKey, SecretKey

LIST_HELP = {
    "dir": "the channel folder whose keys/ holds the lists (published beside latest.json); default: dist",
    "root-key": "the current root's secret key (kept offline; `invoke keygen --root`)",
}


def _secret(path: str, option: str) -> SecretKey:
    from toolchain.release.signing import load_secret_key

    return load_secret_key(Path(required(path, option)))


def _public(path: str) -> PublicKey:
    from toolchain.release.signing import parse_public_key

    try:
        return parse_public_key(Path(path).read_text(), path)
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror}", hint="check the path") from None


@task(
    help={
        **LIST_HELP,
        "release-key": "public key of the new release key (replaces the listed release keys)",
        "channel-key": "public key that may re-sign the channel, e.g. CI's renewal (replaces the listed one)",
        "days": "how long the new keys stay valid; default: 365",
        "new-root": "a new root's secret key: the list moves trust to it (signed by the old and the new root)",
        "pinned-key": "first list only: the release key installed copies pin today; it signs the list so they move on",
    },
    name="rotate-key",
)
def rotate_key_task(
    c: Context,
    dir: str = "dist",  # noqa: A002 - the option's name
    root_key: str = "",
    release_key: str = "",
    channel_key: str = "",
    days: int = 365,
    new_root: str = "",
    pinned_key: str = "",
) -> None:
    """Write and sign the next key list: a new release or channel key, or a new root."""
    from toolchain.release.keylist import KeyList, ListedKey, latest_list, write_keylist

    folder = Path(dir)
    root = _secret(root_key, "--root-key")
    current = latest_list(folder)
    signers: list[SecretKey] = [root]
    if current is None:
        if pinned_key:  # installed copies trust this key as their root until they read list 1
            pinned = _secret(pinned_key, "--pinned-key")
            signers.append(pinned)
        current = KeyList(0, (root.public_key(),), 1, (), ())
    elif root.public_key() not in current.roots:
        raise UsageError(
            f"--root-key is not a root of key list {current.version}",
            hint="sign with the current root (a new root is introduced with --new-root)",
        )
    elif pinned_key:
        raise UsageError("--pinned-key is for the first list only", hint=f"{folder}/keys already has lists")
    now = datetime.now(UTC).replace(microsecond=0)
    keys = [k for k in current.keys if k.expires > now]
    for path, role in ((release_key, "release"), (channel_key, "channel")):
        if path:
            public = _public(path)
            keys = [k for k in keys if k.role != role] + [ListedKey(public, role, now + timedelta(days=days))]
    roots = current.roots
    if new_root:
        rotated = _secret(new_root, "--new-root")
        signers.append(rotated)
        roots = (rotated.public_key(),)
    if not (release_key or channel_key or new_root):
        raise UsageError("nothing to rotate", hint="pass --release-key, --channel-key and/or --new-root")
    made = KeyList(current.version + 1, roots, 1, tuple(keys), current.revoked)
    written = write_keylist(folder, made, signers)
    log.info(f"wrote {written} (version {made.version}: {', '.join(f'{k.role} {k.id}' for k in keys)}), "
             f"signed by {len(signers)} key(s); publish {folder}/keys/ beside latest.json")  # fmt: skip


@task(help={**LIST_HELP, "key-id": "the id of the key to revoke (as minisign prints it)"}, name="revoke-key")
def revoke_key_task(c: Context, dir: str = "dist", root_key: str = "", key_id: str = "") -> None:  # noqa: A002
    """Write and sign the next key list without KEY-ID, which is refused from then on."""
    from toolchain.release.keylist import KeyList, latest_list, write_keylist

    folder = Path(dir)
    name = required(key_id, "--key-id").upper()
    root = _secret(root_key, "--root-key")
    current = latest_list(folder)
    if current is None:
        raise UsageError(f"{folder}/keys has no key list", hint="write the first with `invoke rotate-key`")
    if root.public_key() not in current.roots:
        raise UsageError(f"--root-key is not a root of key list {current.version}", hint="sign with the current root")
    if name not in {k.id for k in current.keys}:
        raise UsageError(f"key list {current.version} names no key {name}",
                         hint=f"listed: {', '.join(k.id for k in current.keys) or 'none'}")  # fmt: skip
    made = KeyList(current.version + 1, current.roots, current.threshold,
                   tuple(k for k in current.keys if k.id != name), (*current.revoked, name))  # fmt: skip
    written = write_keylist(folder, made, [root])
    log.info(f"wrote {written}: key {name} revoked; publish {folder}/keys/ beside latest.json")


@task(
    help={
        "out-dir": "folder for minisign.key and minisign.pub (not the release folder); default: keys",
        "force": "overwrite an existing key pair",
        "root": "make an offline root key (root.key/root.pub): it signs the key lists (`invoke rotate-key`)",
    },
    name="keygen",
)
def keygen_task(c: Context, out_dir: str = "keys", force: bool = False, root: bool = False) -> None:
    """Make a minisign (Ed25519) key pair for signing releases (or, with --root, key lists)."""
    from toolchain.atomic import write_atomic
    from toolchain.release.folder import SUMS_NAME
    from toolchain.release.signing import generate

    folder = Path(required(out_dir, "--out-dir"))
    stem = "root" if root else "minisign"
    secret, public = folder / f"{stem}.key", folder / f"{stem}.pub"
    if secret.exists() and not force:
        raise UsageError(
            f"{secret} already exists",
            hint="pass --force to replace it (old signatures stay valid only with the old key)",
        )
    if (folder / SUMS_NAME).exists() or (folder / "build-record.json").exists():
        raise UsageError(
            f"{folder} is a release folder", hint="keep keys out of what you publish: use another --out-dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    key = generate()
    write_atomic(secret, key.render(), 0o600)
    public.write_text(key.public_key().render())
    where = "offline, never in CI" if root else "a CI secret, never the release folder"
    log.info(f"wrote {secret} (keep it secret: {where}) and {public}")
    print(public.read_text().splitlines()[1])


@task(
    help={
        "path": "file to sign (default: every file listed in the release folder's sha256.sum, and the list)",
        "out-dir": "the release folder; default: dist",
        "secret-key": "minisign secret key file (else [sign] secret-key-file, $TOOLCHAIN_SECRET_KEY(_FILE))",
    },
    name="sign",
)
def sign_task(c: Context, path: str = "", out_dir: str = "", secret_key: str = "") -> None:
    """Sign files with minisign-compatible Ed25519 signatures (.minisig)."""
    from toolchain.config.settings import load_settings
    from toolchain.release.folder import SUMS_NAME
    from toolchain.release.signing import load_secret_key, sign_file

    settings = load_settings()
    key = load_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
    if path:
        files = [Path(path)]
    else:
        from toolchain.release.folder import parse_sums

        folder = out_folder(out_dir, settings)
        files = [folder / name for name in parse_sums(folder / SUMS_NAME)] + [folder / SUMS_NAME]
    for file in files:
        if not file.is_file():
            raise UsageError(f"{file} does not exist", hint="check the path")
        log.info(f"signed {sign_file(file, key, f'file:{file.name}')}")


@task(
    help={
        "path": "the release folder to check; default: dist",
        "public-key": "minisign public key: a file, or the key itself (else [sign] public-key-file)",
        "json": "print the result as JSON on stdout",
        "root": "root public key the folder's key lists follow from, for a channel re-signed by a channel key "
        "(default: the release key, which signs list 1)",
    },
    name="verify",
)
def verify_task(c: Context, path: str = "", public_key: str = "", json: bool = False, root: str = "") -> None:
    """Check a release folder: every file listed, every digest and signature right, the channel not about to expire."""
    from toolchain.config.settings import load_settings
    from toolchain.errors import ReleaseCheckError
    from toolchain.release.folder import verify_release
    from toolchain.release.latest import RENEW_HINT, stale_channel
    from toolchain.release.signing import public_key_text

    settings = load_settings()
    folder = out_folder(path, settings)
    key_text = public_key_text(public_key, settings.public_key_file)
    checked = verify_release(folder, key_text, public_key_text(root, None) if root else "")
    try:
        stale = stale_channel(folder, settings.update.min_validity)
    except ValueError as exc:
        raise ReleaseCheckError(str(exc), hint="run `invoke package`") from None
    if stale:
        # Its files are sound, but publishing it would freeze every installed copy.
        raise ReleaseCheckError(f"the channel {stale}", hint=RENEW_HINT)
    if json:
        log.json({"schema": "toolchain.verify/v1", "ok": True, "folder": str(folder), "files": checked})
        return
    log.table(f"Release folder {folder} verified", ["file", "digest", "signature"], [[n, "ok", "ok"] for n in checked])


TASKS = (keygen_task, sign_task, verify_task, rotate_key_task, revoke_key_task)
