"""cargo started ahead: the toolkit's own setup before cargo (settings, the
catalog, cargo metadata, the pipeline's modules: about 0.1-0.15 s) runs while
cargo already compiles.

A build that got past the fresh check starts the first cargo command of the
same command's last build (`invoke build` with the same options in the same
folder, see fresh.command_key) at once, from the store beside the
fingerprints. The build then works out its command as ever; the first cargo
run adopts the started one only when the argument list, the folder and the
whole environment are identical (proc.run). Anything else stops it (its
process group, so its rustc too) before the build goes on: a changed setting,
another target, an error before cargo, an interrupt. So what runs is always
what the build decided; only its start is earlier.

Only a runner that is one cargo-like command on this host (native, zig), with
no compile cache and no merged std sources, is remembered: those are the
builds whose setup writes nothing cargo reads. A record another user could
have written is ignored, as is a program other than cargo's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolchain import proc
from toolchain.atomic import write_atomic
from toolchain.build.fresh import store_dir

SCHEMA = "toolchain.launch/v1"
# What a remembered command may run: cargo, or a wrapper that runs it.
PROGRAMS = frozenset({"cargo", "cargo-zigbuild", "cargo-auditable"})


def launch_file(key: str) -> Path:
    return store_dir() / f"{key}.launch.json"


def start(key: str) -> None:
    """Start the first cargo command of this command's last build, if one is remembered."""
    proc.first_launch(forget=True)
    launch = remembered(launch_file(key))
    if launch is not None:
        proc.start_ahead(launch)


def finish(key: str) -> None:
    """After the build, however it ended: stop a started command nothing adopted, and
    remember this build's first cargo command (a cache: a failure to write costs only speed)."""
    proc.stop_ahead()
    launch = proc.first_launch(forget=True)
    if launch is None:
        return
    document = {"schema": SCHEMA, "argv": list(launch.argv), "env": launch.env, "cwd": launch.cwd}
    try:
        store_dir().mkdir(parents=True, exist_ok=True)
        write_atomic(launch_file(key), json.dumps(document, sort_keys=True), 0o600)
    except OSError:
        pass


def remembered(path: Path) -> proc.Launch | None:
    """The command in `path` when it is this user's own, private file of the right
    shape naming cargo's program; else None."""
    try:
        with path.open("rb") as handle:
            status = os.fstat(handle.fileno())
            if status.st_uid != os.getuid() or status.st_mode & 0o022:
                return None
            document = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        return None
    argv, env, cwd = document.get("argv"), document.get("env"), document.get("cwd")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return None
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        return None
    if not (cwd is None or isinstance(cwd, str)) or Path(argv[0]).name not in PROGRAMS:
        return None
    return proc.Launch(tuple(argv), dict(env), cwd)
