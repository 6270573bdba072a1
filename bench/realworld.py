"""The wide real-crate corpus: the registry's most-used binary crates, every target, default settings.

Each crate is fetched from crates.io at a pinned version (its published source, with the
Cargo.lock it ships), checked against the index's checksum, and built the way a new user
would: `toolchain build --target T` in the crate's own folder, no toolchain.toml, no flags.
Then `toolchain smoke` runs what this machine can run (native, qemu, wine). The table goes
to docs/realworld.md (and the raw rows to docs/data/realworld.json); a cell is green, or red
with the one-line reason the toolkit gave.

Not CI: a full run is 10+ crates x 5 targets, hours on 2 cores.

    python3 bench/realworld.py [--crates ripgrep,fd-find] [--targets x86_64-unknown-linux-gnu]
                               [--cache /var/tmp/toolchain-realworld] [--timeout 2400] [--no-write]
                               [--resume [--redo]]

--resume keeps the cells the JSON has and builds the rest; with --redo the chosen crates and
targets are built again in their rows (a cell measured on an older tree or a busier machine).
While CACHE/pause exists the run waits between cells (for a bench that needs a quiet machine).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (crate, version): the most-downloaded binary crates, and the C parts that are hard to
# cross-compile (jemalloc, ring/aws-lc, libgit2, zstd) among their dependencies.
CORPUS: tuple[tuple[str, str], ...] = (
    ("ripgrep", "15.2.0"),
    ("fd-find", "10.5.0"),
    ("bat", "0.26.1"),
    ("xh", "0.26.3"),
    ("hyperfine", "2.0.0"),
    ("just", "1.59.0"),
    ("tokei", "15.0.0"),
    ("du-dust", "1.2.7"),
    ("sd", "1.0.0"),
    ("zoxide", "0.10.0"),
    ("git-delta", "0.20.1"),
    ("ouch", "0.8.3"),
    ("eza", "0.23.5"),
    ("difftastic", "0.72.0"),
    ("watchexec-cli", "2.8.0"),
    ("fnm", "1.39.0"),
    ("gitui", "0.28.1"),
    ("bandwhich", "0.23.1"),
    ("bottom", "0.15.0"),
)
TARGETS = (
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-gnu",
)
# -sys crates worth naming in the table: the C parts a cross build has to compile.
C_PARTS = (
    "tikv-jemalloc-sys",
    "aws-lc-sys",
    "ring",
    "libgit2-sys",
    "zstd-sys",
    "openssl-sys",
    "bzip2-sys",
    "lzma-sys",
    "libssh2-sys",
    "openssl-src",
)


@dataclass
class Cell:
    crate: str
    version: str
    target: str
    ok: bool
    ran: str  # "ran", "static" (cannot run here) or "-" (not built)
    seconds: float
    cargo_seconds: float
    binary_bytes: int
    reason: str
    measured: str = ""  # UTC date and time the cell was built ("" in rows from before it was kept)
    machine: str = ""  # the compilers and tools it was built with (machine_tools())
    # The toolkit's time outside cargo by its build record's phases alone (prepare, verify, package...):
    # without the interpreter's start, the release folder and exit, which `seconds` holds. 0: not kept.
    recorded_outside: float = 0.0


def index_path(name: str) -> str:
    """The sparse index's path of a crate name (cargo's layout)."""
    if len(name) <= 2:
        return f"{len(name)}/{name}"
    if len(name) == 3:
        return f"3/{name[0]}/{name}"
    return f"{name[:2]}/{name[2:4]}/{name}"


def fetch(name: str, version: str, cache: Path) -> Path:
    """The crate's published source, unpacked once into the cache: its folder."""
    folder = cache / "src" / f"{name}-{version}"
    if (folder / "Cargo.toml").is_file():
        return folder
    with urllib.request.urlopen(f"https://index.crates.io/{index_path(name)}", timeout=60) as reply:
        rows = [json.loads(line) for line in reply.read().decode().splitlines() if line.strip()]
    expected = next(r["cksum"] for r in rows if r["vers"] == version)
    with urllib.request.urlopen(f"https://static.crates.io/crates/{name}/{name}-{version}.crate", timeout=120) as reply:
        data = reply.read()
    if hashlib.sha256(data).hexdigest() != expected:
        raise SystemExit(f"{name} {version}: the download does not match the index's checksum")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(folder.parent, filter="data")
    return folder


def c_parts(folder: Path) -> list[str]:
    lock = folder / "Cargo.lock"
    if not lock.is_file():
        return []
    text = lock.read_text()
    return [name for name in C_PARTS if f'name = "{name}"' in text]


def reason_of(stderr: str) -> str:
    """The toolkit's one-line error (the last ERROR line), else the last line it printed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or line.startswith("error")]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:300]


def build_cell(name: str, version: str, folder: Path, target: str, cache: Path, timeout: int) -> Cell:
    out_dir = cache / "out" / f"{name}-{version}" / target
    shutil.rmtree(out_dir, ignore_errors=True)
    # This checkout's toolkit, whichever folder the crate is in; one target folder per crate, so
    # its build scripts and proc-macros (host code) are compiled once for all five targets.
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env = dict(os.environ, CARGO_TARGET_DIR=str(cache / "target" / f"{name}-{version}"), PYTHONPATH=python_path)
    started = time.monotonic()
    cargo_seconds, binary_bytes = 0.0, 0
    tools = machine_tools(folder)

    def red(reason: str) -> Cell:
        seconds = time.monotonic() - started
        return Cell(name, version, target, False, "-", seconds, cargo_seconds, binary_bytes, reason, now(), tools, 0.0)

    def toolkit(*args: str, limit: int) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "from toolchain.cli import main; main()", *args]
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=limit, check=False)

    try:
        built = toolkit("build", "--target", target, "--out-dir", str(out_dir), "--json", limit=timeout)
    except subprocess.TimeoutExpired:
        return red(f"timed out after {timeout} s")
    seconds = time.monotonic() - started
    try:
        entry = json.loads(built.stdout)["targets"][0]
    except (json.JSONDecodeError, KeyError, IndexError):
        return red(f"exit {built.returncode}: {reason_of(built.stderr)}")
    cargo_seconds = sum(s for phase, s in entry.get("phases", ()) if phase == "cargo")
    outside = sum(s for phase, s in entry.get("phases", ()) if phase != "cargo")
    binary_bytes = sum(int(b.get("size", 0)) for b in entry.get("binaries", ()))
    if built.returncode != 0 or not entry.get("ok"):
        return red(f"exit {built.returncode}: {entry.get('error') or reason_of(built.stderr)}")
    smoked = toolkit("smoke", "--target", target, "--out-dir", str(out_dir), "--json", limit=600)
    try:
        results = json.loads(smoked.stdout)["results"]
    except (json.JSONDecodeError, KeyError):
        return red(f"smoke: {reason_of(smoked.stderr)}")
    if smoked.returncode != 0 or not all(r["ok"] for r in results):
        return red(f"smoke exit {smoked.returncode}: {reason_of(smoked.stderr)}")
    ran = "ran" if any(r["ran"] for r in results) else "static"
    return Cell(name, version, target, True, ran, seconds, cargo_seconds, binary_bytes, "", now(), tools, outside)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_tools(folder: Path) -> str:
    """The compilers a cell is built with and whether bindgen finds a libclang: a red cell's
    reason can be the machine's (an older rustc, no libclang), and the table says which."""

    def first_line(argv: list[str]) -> str:
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else "none"

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # this checkout's toolkit, as the cells run it
    from toolchain.compile.libclang import libclang_found

    return (
        f"rustc here: {first_line(['rustc', '--version'])}; "
        f"distribution's: {first_line(['/usr/bin/rustc', '--version'])}; "
        f"libclang: {'found' if libclang_found() else 'none'}"
    )


def machine() -> str:
    load = os.getloadavg()
    return f"{platform.node() or 'host'}: {os.cpu_count()} cores, {platform.platform()}, load {load[0]:.1f} at start"


# What a red reason means when the cause is this machine rather than the crate or the toolkit,
# each checked by hand (the table says so beside every red cell whose reason holds the key).
MACHINE_CAUSES = {
    "which rustup has not installed": (
        "this machine's rustup: it cannot download a toolchain (its servers are unreachable here, and "
        "RUSTUP_AUTO_INSTALL=0), so a crate that pins a Rust this machine lacks stops at rustup's refusal; "
        "where rustup can download (and auto-install is on, its default), its proxy installs the pinned "
        "toolchain on first use and the toolkit builds with it"
    ),
}
# Causes checked by reading a crate's own sources, for the one cell they explain (a reason's
# words alone, such as a failed link, say nothing of which crate is at fault).
CRATE_CAUSES = {
    ("ouch", "0.8.3", "x86_64-pc-windows-gnu"): (
        "the crate's: unrar-ng-sys 0.7.6's build.rs picks unrar's Windows sources (isnt.cpp, motw.cpp) with "
        "cfg!(windows), the build machine's OS, so cross-compiled from Linux they are left out and the link "
        "misses WinNT() and MarkOfTheWeb; the headers it includes in the Windows SDK's spelling (PowrProf.h, "
        "Sddl.h, Wbemidl.h) the toolkit now finds"
    ),
    ("bandwhich", "0.23.1", "x86_64-pc-windows-gnu"): (
        "the crate's: pnet_datalink 0.34.0's src/bindings/winpcap.rs has #[link(name = \"Packet\")], the import "
        "library of the Npcap (or WinPcap) SDK, which a Windows build machine has only where someone installed "
        "that SDK (bandwhich's README asks Windows users to install npcap)"
    ),
}


def write_table(cells: list[Cell], parts: dict[str, list[str]], started: str, where: str) -> str:
    crates = list(dict.fromkeys(f"{c.crate} {c.version}" for c in cells))
    targets = list(dict.fromkeys(c.target for c in cells))
    by = {(f"{c.crate} {c.version}", c.target): c for c in cells}
    green = sum(c.ok for c in cells)
    shares = [(c.seconds - c.cargo_seconds) / c.cargo_seconds for c in cells if c.ok and c.cargo_seconds > 0]
    recorded = [c.recorded_outside / c.cargo_seconds for c in cells if c.ok and c.cargo_seconds and c.recorded_outside]
    dates = sorted(c.measured for c in cells if c.measured)
    span = f"cells built from {dates[0]} to {dates[-1]}" if dates else f"last run started {started}"
    tools = sorted({c.machine for c in cells if c.machine})
    lines = [
        "# The wide real-crate corpus",
        "",
        f"Made by `python3 bench/realworld.py` ({where}; {span}; rows from before each cell's date was kept "
        f"are from earlier runs, the earliest on 2026-12-06). Each crate at the pinned version, "
        "its shipped Cargo.lock, built with `toolchain build --target T` in its own folder with default "
        "settings, then `toolchain smoke` (native, qemu or wine; macOS binaries are checked statically).",
        "",
        *(f"Tools: {t}." for t in tools),
        *([""] if tools else []),
        f"**{green} of {len(cells)} cells green.** Time outside cargo, median over the green cells: "
        + (f"{statistics.median(shares) * 100:.2f} % of cargo's time" if shares else "n/a")
        + " (the whole process's wall time less its cargo phase)."
        + (
            f" By the build records' phases alone (prepare, verify, package; without the interpreter's start, "
            f"the release folder and exit), over the {len(recorded)} cells that kept them: "
            f"{statistics.median(recorded) * 100:.2f} %."
            if recorded
            else ""
        ),
        "",
        "| crate | C parts | " + " | ".join(targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    for crate in crates:
        row = [crate, ", ".join(parts.get(crate, [])) or "-"]
        for target in targets:
            cell = by.get((crate, target))
            if cell is None:
                row.append("not run")
            elif cell.ok:
                row.append(f"ok, {cell.ran}, {cell.seconds:.0f} s, {cell.binary_bytes / 1e6:.1f} MB")
            else:
                row.append(f"**red** {cell.seconds:.0f} s")
        lines.append("| " + " | ".join(row) + " |")
    reds = [c for c in cells if not c.ok]
    if reds:
        lines += ["", "## Why each red cell is red", ""]
        for c in reds:
            causes = [cause for key, cause in MACHINE_CAUSES.items() if key in c.reason]
            causes += [CRATE_CAUSES[key] for key in [(c.crate, c.version, c.target)] if key in CRATE_CAUSES]
            lines.append(f"- {c.crate} {c.version}, {c.target}: {c.reason.replace('|', '/')}")
            lines += [f"  (checked: {cause})" for cause in causes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crates", default="", help="comma-separated crate names (default: the whole corpus)")
    parser.add_argument("--targets", default="", help="comma-separated target triples (default: all five)")
    parser.add_argument("--cache", default="/var/tmp/toolchain-realworld", help="sources, target folders, outputs")
    parser.add_argument("--timeout", type=int, default=2400, help="seconds one build may take")
    parser.add_argument("--no-write", action="store_true", help="print the table; leave docs/ alone")
    parser.add_argument(
        "--resume", action="store_true", help="keep the cells docs/data/realworld.json already has; build the rest"
    )
    parser.add_argument(
        "--redo", action="store_true", help="with --resume: build the chosen crates and targets again, in their rows"
    )
    args = parser.parse_args()
    wanted = {c for c in args.crates.split(",") if c}
    corpus = [(n, v) for n, v in CORPUS if not wanted or n in wanted]
    targets = [t for t in args.targets.split(",") if t] or list(TARGETS)
    cache = Path(args.cache)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    rows = REPO / "docs" / "data" / "realworld.json"
    cells: list[Cell] = []
    if args.resume and rows.is_file():
        cells = [Cell(**row) for row in json.loads(rows.read_text())]
    done = {(c.crate, c.version, c.target) for c in cells}
    if args.redo:
        done -= {(n, v, t) for n, v in corpus for t in targets}
    # The C parts of every crate in the table, kept rows included (a --crates run rewrites the whole table).
    listed = {(c.crate, c.version) for c in cells}
    parts = {f"{n} {v}": c_parts(fetch(n, v, cache)) for n, v in CORPUS if (n, v) in listed and (n, v) not in corpus}
    for name, version in corpus:
        folder = fetch(name, version, cache)
        parts[f"{name} {version}"] = c_parts(folder)
        # The graph's sources downloaded before any cell is timed: the first cell's crate-graph
        # read (the toolkit's prepare phase) would otherwise count the network as its own time.
        subprocess.run(["cargo", "fetch", "--locked"], cwd=folder, check=False, capture_output=True)
        for target in targets:
            if (name, version, target) in done:
                continue
            wait_while_paused(cache)
            print(f"[realworld] {name} {version} {target} ...", flush=True)
            cell = build_cell(name, version, folder, target, cache, args.timeout)
            kept = [i for i, c in enumerate(cells) if (c.crate, c.version, c.target) == (name, version, target)]
            if kept:
                cells[kept[0]] = cell
            else:
                cells.append(cell)
            verdict = "ok" if cell.ok else f"RED: {cell.reason}"
            print(f"[realworld] {name} {target}: {verdict} ({cell.seconds:.0f} s)", flush=True)
            if not args.no_write:  # after every cell: a run stopped half-way keeps what it measured
                write(cells, parts, started, where, rows)
    if not args.no_write:  # the table again, also when every cell was kept (--resume)
        write(cells, parts, started, where, rows)
    print(write_table(cells, parts, started, where))


def wait_while_paused(cache: Path) -> None:
    """Between cells, while CACHE/pause exists: a bench that needs a quiet machine can run, and
    no cell's time counts the wait."""
    pause = cache / "pause"
    if pause.exists():
        print(f"[realworld] paused while {pause} exists", flush=True)
    while pause.exists():
        time.sleep(5)


def write(cells: list[Cell], parts: dict[str, list[str]], started: str, where: str, rows: Path) -> None:
    rows.parent.mkdir(parents=True, exist_ok=True)
    (REPO / "docs" / "realworld.md").write_text(write_table(cells, parts, started, where))
    rows.write_text(json.dumps([asdict(c) for c in cells], indent=1) + "\n")


if __name__ == "__main__":
    main()
