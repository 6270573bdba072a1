"""cargo-dist beside the toolkit, on real crates (the corpus's, or the registry's), in one run.

For each crate and target, both tools build from clean (their own empty
cargo target folders) and write their release files; the bench prints wall
time, binary bytes, archive bytes and the checks each made. Then both
tools' shell installers meet the same cases, served from 127.0.0.1: a
tampered archive, no hash tool, an existing install, a folder the user
cannot write. A bench only (never CI): cargo-dist is installed with
`cargo install --locked` into a cache outside the repository.

    python3 bench/peers.py [--crates cli,zstd,ripgrep@15.2.0] [--targets host,aarch64] [--rounds 3]
                           [--cache /var/tmp/peers]

A crate is a corpus name (tests/corpus) or NAME@VERSION from crates.io (its published source and
Cargo.lock, checked against the index's checksum, as bench/realworld.py fetches it). With
--rounds N every build runs N times from clean and the tables show medians.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIST_VERSION = "0.34.0"  # cargo-dist's latest release on crates.io when this bench was written
HOST = "x86_64-unknown-linux-gnu"
TARGETS = {"host": HOST, "aarch64": "aarch64-unknown-linux-gnu"}
CORPUS = REPO / "tests" / "corpus"
CRATES = {"cli": "corpus-cli", "zstd": "corpus-zstd"}  # corpus name -> its binary
NOBODY = 65534

DIST_CONFIG = f"""
[workspace.metadata.dist]
cargo-dist-version = "{DIST_VERSION}"
ci = "github"
installers = ["shell"]
targets = [{{targets}}]
install-path = "CARGO_HOME"

[package.metadata.dist]
dist = true  # the corpus crates say publish = false, which dist otherwise skips
"""
# What `dist init` adds when the project has no dist profile of its own.
DIST_PROFILE = """
[profile.dist]
inherits = "release"
lto = "thin"
"""


@dataclass
class Built:
    tool: str
    crate: str
    target: str
    ok: bool
    seconds: float
    binary_bytes: int = 0
    archive_bytes: int = 0
    archive: Path | None = None
    installer: Path | None = None
    checks: list[str] = field(default_factory=list)
    error: str = ""
    how: str = ""  # the build command the tool chose (its runner, or cargo-dist's cross wrapper)
    app: str = ""  # the package's name: the installers' variables are named after it
    binary: str = ""  # what the installers put on PATH


# --- installing cargo-dist -------------------------------------------------------------------


def install_dist(cache: Path) -> tuple[Path, float | None, bool]:
    """The `dist` binary, the seconds its install took (None: not recorded),
    and whether this run installed it."""
    root = cache / "cargo-dist"
    binary, timing = root / "bin" / "dist", root / "install-seconds"
    if binary.exists():
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
        if DIST_VERSION in version:
            return binary, float(timing.read_text()) if timing.exists() else None, False
    started = time.perf_counter()
    subprocess.run(
        ["cargo", "install", "--locked", "cargo-dist", "--version", DIST_VERSION, "--root", str(root), "--force"],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(cache / "target")},
    )
    seconds = time.perf_counter() - started
    timing.write_text(f"{seconds:.0f}\n")
    return binary, seconds, True


# --- building --------------------------------------------------------------------------------


def source_of(crate: str, cache: Path) -> Path:
    """A corpus crate's folder, or a registry crate's published source (NAME@VERSION)."""
    if "@" not in crate:
        return CORPUS / crate
    sys.path.insert(0, str(REPO / "bench"))
    from realworld import fetch  # the same checked download as the wide corpus

    name, version = crate.split("@", 1)
    return fetch(name, version, cache)


def names(source: Path) -> tuple[str, str]:
    """The crate's package name (its app, which names the installers' variables) and first binary."""
    listed = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--manifest-path", str(source / "Cargo.toml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    package = json.loads(listed.stdout)["packages"][0]
    return package["name"], next(t["name"] for t in package["targets"] if "bin" in t["kind"])


def fresh_copy(source: Path, work: Path) -> Path:
    copy = work / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("target"))
    return copy


def build_toolkit(crate: str, source: Path, triple: str, work: Path) -> Built:
    """`toolchain build`, as a user runs it (it verifies, packages and writes the
    release folder with its installers), from a clean target folder."""
    project = fresh_copy(source, work)
    out = work / "release"
    env = {**os.environ, "CARGO_TARGET_DIR": str(work / "target"), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    steps = [
        ["build", "--json", "--target", triple, "--manifest-path", str(project / "Cargo.toml"), "--out-dir", str(out)],
    ]
    outputs = []
    for step in steps:
        done = subprocess.run(
            [sys.executable, "-c", "from toolchain.cli import main; main()", *step],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return Built("toolkit", crate, triple, False, time.perf_counter() - started, error=last)
        outputs.append(done.stdout)
    seconds = time.perf_counter() - started
    report = json.loads(outputs[0])
    result = report["targets"][0]
    binary = result["binaries"][0]
    checks = sorted({v["rule"] for b in result["binaries"] for v in b["verdicts"]})
    archive = next(out.glob(f"*{triple}.tar.xz"))
    return Built(
        "toolkit",
        crate,
        triple,
        True,
        seconds,
        binary_bytes=binary["size"],
        archive_bytes=archive.stat().st_size,
        archive=archive,
        installer=next(out.glob("*-installer.sh")),
        checks=[*checks, "sha256 of each archive", "reproducible archive bytes", "signed manifest (with a key)"],
        how=f"{result.get('runner')} runner, {result.get('route')} std",
        app=names(project)[0],
        binary=Path(binary["path"]).name,
    )


@functools.cache
def rustup_targets() -> frozenset[str]:
    listed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True, check=False)
    return frozenset(listed.stdout.split())


def restore_rustup_targets() -> None:
    """`dist build` runs `rustup target add` for its target where rustup can download it: remove
    what it added, so the machine (and the toolkit's std route in the next round and in the tests)
    stays as it was. Said on stderr, since that round of dist counted the download."""
    listed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True, check=False)
    for added in sorted(frozenset(listed.stdout.split()) - rustup_targets()):
        subprocess.run(["rustup", "target", "remove", added], capture_output=True, check=False)
        print(f"cargo-dist added rustup's {added} std (its build counted the download): removed again", file=sys.stderr)


def build_dist(dist: Path, crate: str, source: Path, triple: str, work: Path) -> Built:
    """`dist build` for one target with the config `dist init` would write, from a clean target folder."""
    project = fresh_copy(source, work)
    manifest = project / "Cargo.toml"
    text = manifest.read_text()
    if "\nrepository = " not in text:
        text = text.replace("[package]\n", '[package]\nrepository = "https://github.com/example/corpus"\n', 1)
    config = DIST_CONFIG.replace("{targets}", f'"{triple}"')
    manifest.write_text(text + config + ("" if "[profile.dist]" in text else DIST_PROFILE))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "corpus"],
        cwd=project,
        check=True,
    )
    env = {**os.environ, "CARGO_TARGET_DIR": str(project / "target")}
    if triple not in rustup_targets():
        # rustup cannot add targets here (no static.rust-lang.org); Debian's
        # rustc has aarch64's std, as the toolkit's distro route uses. Where
        # rustup has the target, both tools use rustup's rustc.
        env["RUSTC"] = "/usr/bin/rustc"
    started = time.perf_counter()
    done = subprocess.run(
        [str(dist), "build", "--artifacts=all", "--target", triple, "--allow-dirty", "--output-format=json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    restore_rustup_targets()
    # dist picks a cross wrapper itself (cargo-zigbuild from a Linux host to another Linux
    # architecture) and names it in its "building T target, from H host, via W" line.
    how = next((line.split(", via ")[1].split(",")[0] for line in done.stderr.splitlines() if ", via " in line), "")
    how = f"cargo {how.removeprefix('cargo-')}" if how else "cargo build"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return Built("cargo-dist", crate, triple, False, seconds, error=" / ".join(lines[-3:])[:400], how=how)
    distrib = project / "target" / "distrib"
    archive = next(distrib.glob(f"*{triple}.tar.xz"))
    app, binary_name = names(project)
    binary = project / "target" / triple / "dist" / binary_name
    checks = ["sha256 of each archive"]
    if (distrib / "dist-manifest.json").exists():
        dist_manifest = json.loads((distrib / "dist-manifest.json").read_text())
        if any(a.get("kind") == "executable-zip" and a.get("checksum") for a in dist_manifest["artifacts"].values()):
            checks = ["sha256 of each archive (embedded in the installer)"]
        if dist_manifest.get("linkage"):
            checks.append("linkage report")
    return Built(
        "cargo-dist",
        crate,
        triple,
        True,
        seconds,
        binary_bytes=binary.stat().st_size if binary.exists() else 0,
        archive_bytes=archive.stat().st_size,
        archive=archive,
        installer=next(distrib.glob("*-installer.sh"), None),
        checks=checks,
        how=how,
        app=app,
        binary=binary_name,
    )


# --- installer cases -------------------------------------------------------------------------


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def restricted_path(folder: Path, leave_out: set[str]) -> str:
    """A PATH of links to the usual tools, minus some."""
    folder.mkdir()
    tools = "uname awk mktemp curl wget tar xz gzip mkdir cp chmod mv rm tr sed date cat getconf ldd grep head"
    tools += " sh sleep wc sha256sum shasum openssl cut sort ls id env install dirname basename touch"
    for tool in tools.split():
        found = shutil.which(tool)
        if found and tool not in leave_out:
            (folder / tool).symlink_to(found)
    return str(folder)


def env_prefix(app: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in app.upper())


def installer_env(tool: str, app: str, url: str, home: Path) -> dict[str, str]:
    prefix = env_prefix(app)
    if tool == "toolkit":
        return {
            f"{prefix}_DOWNLOAD_URL": url,
            f"{prefix}_INSTALL_DIR": str(home / "bin"),
            f"{prefix}_NO_MODIFY_PATH": "1",
        }
    # cargo-dist's installer: a base URL override, and CARGO_HOME for install-path = "CARGO_HOME".
    return {
        f"{prefix}_DOWNLOAD_URL": url,
        "INSTALLER_DOWNLOAD_URL": url,
        "CARGO_HOME": str(home / "cargo"),
        f"{prefix}_NO_MODIFY_PATH": "1",
        "INSTALLER_NO_MODIFY_PATH": "1",
    }


def installed(built: Built, home: Path) -> Path:
    return home / "bin" / built.binary if built.tool == "toolkit" else home / "cargo" / "bin" / built.binary


def run_installer(installer: Path, env: dict[str, str], as_nobody: bool = False) -> tuple[int, str]:
    command = ["sh", str(installer)]
    if as_nobody:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in (done.stderr + done.stdout).splitlines() if "rror" in line or "ERROR" in line]
    return done.returncode, (lines[0] if lines else (done.stderr.strip().splitlines() or [""])[-1])[:160]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def installer_cases(built: Built, work: Path) -> dict[str, str]:
    """Each case's outcome in a few words, for the host target's release."""
    assert built.installer and built.archive
    app = built.app
    release = built.archive.parent
    outcomes: dict[str, str] = {}
    base = {"PATH": os.environ["PATH"], "TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir(parents=True, exist_ok=True)

    def home_for(case: str) -> Path:
        home = work / case / "home"
        home.mkdir(parents=True)
        return home

    with serve(release) as url:
        # Works at all.
        home = home_for("plain")
        code, line = run_installer(
            built.installer, {**base, "HOME": str(home), **installer_env(built.tool, app, url, home)}
        )
        outcomes["installs"] = "yes" if code == 0 and installed(built, home).exists() else f"no (exit {code}: {line})"
        # Existing install: a second run over the first.
        before = installed(built, home)
        stamp = before.stat().st_mtime_ns if before.exists() else None
        code, line = run_installer(
            built.installer, {**base, "HOME": str(home), **installer_env(built.tool, app, url, home)}
        )
        replaced = before.exists() and before.stat().st_mtime_ns != stamp
        outcomes["existing install"] = (
            f"exit {code}, " + ("replaced" if replaced else "not replaced") + (f" ({line})" if code else "")
        )
        # No hash tool.
        home = home_for("nohash")
        path = restricted_path(work / "nohash" / "bin", {"sha256sum", "shasum", "openssl"})
        env = {**base, "PATH": path, "HOME": str(home), **installer_env(built.tool, app, url, home)}
        code, line = run_installer(built.installer, env)
        got = installed(built, home).exists()
        outcomes["no hash tool"] = ("INSTALLED UNCHECKED" if got else "refused") + f" (exit {code}: {line})"
    # Tampered archive: a copy of the release with bytes appended to the archive.
    tampered = work / "tampered-release"
    shutil.copytree(release, tampered)
    (tampered / built.archive.name).write_bytes(built.archive.read_bytes() + b"tampered")
    with serve(tampered) as url:
        home = home_for("tampered")
        code, line = run_installer(
            built.installer, {**base, "HOME": str(home), **installer_env(built.tool, app, url, home)}
        )
        got = installed(built, home).exists()
        outcomes["tampered archive"] = ("INSTALLED" if got else "refused") + f" (exit {code}: {line})"
    # A folder the user cannot write: run as nobody, into a root-owned folder.
    with serve(release) as url:
        home = home_for("readonly")
        os.chown(home, NOBODY, NOBODY)
        locked = work / "readonly" / "locked"
        locked.mkdir(mode=0o755)
        env = {**base, "HOME": str(home), **installer_env(built.tool, app, url, home)}
        env["TMPDIR"] = str(home)
        for key in env:
            if key.endswith("_INSTALL_DIR"):
                env[key] = str(locked / "bin")
        if built.tool == "cargo-dist":
            env["CARGO_HOME"] = str(locked)
        readable = home / built.installer.name  # the scratch folder is 0700
        shutil.copy(built.installer, readable)
        os.chown(readable, NOBODY, NOBODY)
        code, line = run_installer(readable, env, as_nobody=True)
        left = files_under(home) - {".config", readable.name}
        outcomes["non-writable dir"] = f"exit {code}: {line}" + (
            f"; left behind: {', '.join(sorted(left))}" if left else ""
        )
    return outcomes


# --- report ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), load {os.getloadavg()[0]:.1f}"


def medians(rows: list[Built]) -> list[Built]:
    """One row per crate, target and tool: the median wall time of its rounds (a failed round
    fails the row); sizes from the first round (the bytes are the same every round)."""
    grouped: dict[tuple[str, str, str], list[Built]] = {}
    for row in rows:
        grouped.setdefault((row.crate, row.target, row.tool), []).append(row)
    out = []
    for runs in grouped.values():
        failed = next((r for r in runs if not r.ok), None)
        first = failed or runs[0]
        seconds = statistics.median(r.seconds for r in runs)
        out.append(Built(**{**first.__dict__, "seconds": seconds}))
    return out


def ratios(rows: list[Built]) -> str:
    """The toolkit's wall time against cargo-dist's, per target and over every pair both built."""
    lines = []
    for target in sorted({r.target for r in rows}):
        pairs = [
            (ours, theirs)
            for ours in rows
            for theirs in rows
            if ours.tool == "toolkit" and theirs.tool == "cargo-dist" and ours.ok and theirs.ok
            and ours.crate == theirs.crate and ours.target == theirs.target == target
        ]  # fmt: skip
        if pairs:
            ours_s, theirs_s = sum(p[0].seconds for p in pairs), sum(p[1].seconds for p in pairs)
            sizes = ", ".join(
                f"{p[0].crate} binary {p[0].binary_bytes / max(p[1].binary_bytes, 1):.3f}x" for p in pairs
            )
            lines.append(
                f"{target}: toolkit {ours_s:.1f} s against cargo-dist {theirs_s:.1f} s over {len(pairs)} crates: "
                f"{ours_s / theirs_s:.2f}x (goal <= 1.0x); {sizes} (goal <= 1.0x)"
            )
        else:
            lines.append(f"{target}: no crate built by both tools")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crates", default="cli,zstd", help="corpus names or NAME@VERSION from crates.io")
    parser.add_argument("--targets", default="host,aarch64")
    parser.add_argument("--rounds", type=int, default=1, help="builds of each kind, from clean; medians shown")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("PEERS_CACHE", "/var/tmp/peers")))
    options = parser.parse_args()
    options.cache.mkdir(parents=True, exist_ok=True)
    dist, install_seconds, fresh = install_dist(options.cache)
    version = subprocess.run([dist, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    started_load = os.getloadavg()[0]
    rows: list[Built] = []
    cases: dict[tuple[str, str], dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)  # mkdtemp makes it 0700: the non-writable-dir case runs as nobody, who must reach in
        for crate in options.crates.split(","):
            source = source_of(crate, options.cache / "src")
            for target in options.targets.split(","):
                triple = TARGETS[target]
                # Rounds alternate the tools, so a change of load falls on both.
                for round_ in range(options.rounds):
                    for tool in ("toolkit", "cargo-dist"):
                        folder = work / f"{tool}-{source.name}-{target}-{round_}"
                        folder.mkdir()
                        built = (
                            build_toolkit(crate, source, triple, folder)
                            if tool == "toolkit"
                            else build_dist(dist, crate, source, triple, folder)
                        )
                        rows.append(built)
                        status = "ok" if built.ok else f"FAILED: {built.error}"
                        print(f"{tool} {crate} {triple} round {round_ + 1}: {status} {built.seconds:.1f} s",
                              file=sys.stderr)  # fmt: skip
                        if built.ok and triple == HOST and built.installer and (tool, crate) not in cases:
                            cases[(tool, crate)] = installer_cases(built, folder / "installer")
                        # Only the release files are kept between rounds: the target folders are large.
                        shutil.rmtree(folder / "target", ignore_errors=True)
                        shutil.rmtree(folder / source.name / "target", ignore_errors=True)
    shown = medians(rows)
    print(f"## cargo-dist beside the toolkit ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    when = "this run" if fresh else "cached"
    took = f"{install_seconds:.0f} s" if install_seconds is not None else "an unrecorded time"
    print(f"Machine: {machine()} (load {started_load:.1f} at the start). {version}, installed with")
    print(f"`cargo install --locked` in {took} ({when}). Both tools from clean, {options.rounds} round(s),")
    print("alternating; wall times are medians.\n")
    print("| crate | target | tool | built with | wall s | binary bytes | archive bytes | checks |")
    print("|---|---|---|---|---:|---:|---:|---|")
    for row in shown:
        if row.ok:
            print(f"| {row.crate} | {row.target} | {row.tool} | {row.how} | {row.seconds:.1f} | {row.binary_bytes:,} | "
                  f"{row.archive_bytes:,} | {', '.join(row.checks)} |")  # fmt: skip
        else:
            print(f"| {row.crate} | {row.target} | {row.tool} | {row.how} | failed after {row.seconds:.1f} | | | "
                  f"{row.error} |")  # fmt: skip
    if options.rounds > 1:
        print("\nEvery round's wall time: " + "; ".join(
            f"{r.tool} {r.crate} {r.target} {r.seconds:.1f} s" for r in rows
        ))  # fmt: skip
    print(f"\n{ratios(shown)}")
    print("\n| crate | tool | " + " | ".join(next(iter(cases.values()), {}).keys()) + " |")
    print("|---|---|" + "---|" * len(next(iter(cases.values()), {})))
    for (tool, crate), outcome in cases.items():
        print(f"| {crate} | {tool} | " + " | ".join(v.replace("|", "/") for v in outcome.values()) + " |")


if __name__ == "__main__":
    main()
