"""Where a channel's files are, for the two kinds of host a channel lives on.

S3 (or any folder tree): the pointer `{app}/latest.json` above one folder per
version, and the key lists in `keys/` beside the pointer.

GitHub Releases: a release's assets have no folders, and the channel is
`…/releases/latest/download/latest.json` (GitHub's latest release). So every
release carries all key lists as flat assets, `keys-N.json` and
`keys-N.json.KEYID.minisig`, and a download folder `…/releases/download/TAG`
reads its channel from `…/releases/latest/download/latest.json`.

The installers (sh and ps1 templates) follow the same two rules.
"""

from __future__ import annotations

import re

from toolchain.release.keylist import FLAT_PREFIX, KEYS_DIR
from toolchain.release.latest import LATEST_NAME

# A GitHub (or GitHub Enterprise) release download folder: …/OWNER/NAME/releases/download/TAG
# or …/OWNER/NAME/releases/latest/download.
_GITHUB_DOWNLOAD = re.compile(r"^[a-z][a-z0-9+.-]*://.+/releases/(?:latest/download|download/[^/]+)$", re.I)


def is_github_download(folder: str) -> bool:
    """Whether a channel folder (a URL, no trailing name) is a GitHub release's downloads."""
    return bool(_GITHUB_DOWNLOAD.match(folder.rstrip("/")))


def keys_prefix(base: str) -> str:
    """What key list file names are appended to, beside a channel whose folder is `base`."""
    base = base.rstrip("/")
    return f"{base}/{FLAT_PREFIX}" if is_github_download(base) else f"{base}/{KEYS_DIR}/"


def github_asset_name(name_in_keys: str) -> str:
    """The flat release asset name of a file in a folder's keys/ (`1.json` -> `keys-1.json`)."""
    return f"{FLAT_PREFIX}{name_in_keys}"


def pointer_candidates(folder: str) -> tuple[str, ...]:
    """The channel pointers to try for a download folder, best first: GitHub's latest release
    for a GitHub release folder, else S3's pointer one folder above it; then the folder's own."""
    folder = folder.rstrip("/")
    own = f"{folder}/{LATEST_NAME}"
    if is_github_download(folder):
        releases = folder[: folder.rindex("/releases/")]
        latest = f"{releases}/releases/latest/download/{LATEST_NAME}"
        return (latest,) if latest == own else (latest, own)
    return (f"{folder.rsplit('/', 1)[0]}/{LATEST_NAME}", own)
