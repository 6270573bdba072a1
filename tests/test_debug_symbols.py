"""Debug info kept by a crate's profile, split off and shipped beside the
archives (toolchain/compile/debuginfo.py), and `toolchain symbolicate` reading
it back (toolchain/release/symbolicate.py).

One real build of tests/corpus/symbols (`[profile.release] debug = 1`,
which the dist profile inherits, as ripgrep's does) for x86_64 Linux,
aarch64 Linux, x86_64 windows-gnu and x86_64 macOS, packaged into a signed release folder,
serves every check; a crate without debug info is built once for the host.
The stripped binaries are run for real (natively, under qemu, under wine)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile.debuginfo import elf_build_id, gnu_debuglink, llvm_tool, macho_uuid, section_names
from toolchain.config.catalog import load_catalog
from toolchain.config.targets import host_platform
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.records.build_record import load_record
from toolchain.release import signing
from toolchain.release.folder import MANIFEST_NAME, PROVENANCE_NAME, SUMS_NAME, package_release, verify_release
from toolchain.verify.smoke import launcher

pytestmark = pytest.mark.slow

CRATE = REPO_ROOT / "tests" / "corpus" / "symbols"
APP = "corpus-symbols"
LINUX = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")
WINDOWS = "x86_64-pc-windows-gnu"
MACOS = "x86_64-apple-darwin"  # checked statically: no macOS runs here
TARGETS = (*LINUX, WINDOWS, MACOS)
RUNNABLE = (*LINUX, WINDOWS)
# What stripping removes and a shipped binary must not keep: symbol tables, non-allocated DWARF.
DWARF = (".debug_info", ".debug_line")


@dataclass(frozen=True)
class Release:
    report: BuildReport
    folder: Path
    public_key: str
    unpacked: Path  # every archive of the folder, unpacked under NAME/


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Release:
    root = tmp_path_factory.mktemp("debug-symbols")
    crate = root / "crate"
    shutil.copytree(CRATE, crate, ignore=shutil.ignore_patterns("target"))
    folder = root / "dist"
    report = build(BuildOptions(targets=TARGETS, manifest_path=crate / "Cargo.toml", out_dir=folder, keep_going=True))
    assert report.ok, [r.entry.error for r in report.results if not r.ok]
    key = signing.generate()
    package_release(folder, key, "https://downloads.example/symbols/0.1.0", crate)
    unpacked = root / "unpacked"
    for archive in [*folder.glob("*.tar.xz"), *folder.glob("*.zip")]:
        into = unpacked / archive.name
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(into)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(into, filter="data")
    return Release(report, folder, key.public_key().render(), unpacked)


def shipped(release: Release, triple: str) -> Path:
    name = f"{APP}.exe" if "windows" in triple else APP
    archive = f"{APP}-{triple}.{'zip' if 'windows' in triple else 'tar.xz'}"
    top = archive.removesuffix(".zip").removesuffix(".tar.xz")
    return release.unpacked / archive / top / name


def debug_member(triple: str) -> str:
    """Where a binary's DWARF sits in its debug archive (below the top folder)."""
    if triple == MACOS:
        return f"{APP}.dSYM/Contents/Resources/DWARF/{APP}"
    return f"{APP}.exe.debug" if "windows" in triple else f"{APP}.debug"


def debug_file(release: Release, triple: str) -> Path:
    archive = f"{APP}-{triple}-debug.{'zip' if 'windows' in triple else 'tar.xz'}"
    top = archive.removesuffix(".zip").removesuffix(".tar.xz")
    return release.unpacked / archive / top / debug_member(triple)


def function_address(debug: Path, needle: str) -> int:
    """The address of the function whose (mangled) symbol holds `needle`, from the debug file's symbols."""
    nm = llvm_tool("llvm-nm")
    assert nm is not None
    listed = subprocess.run([nm, "--defined-only", str(debug)], capture_output=True, text=True, check=True).stdout
    found = [line.split()[0] for line in listed.splitlines() if needle in line and line.split()[1] in "tT"]
    assert len(found) == 1, listed[:2000]
    return int(found[0], 16)


def source_line(text: str) -> int:
    """The line of tests/corpus/symbols/src/main.rs that holds `text`."""
    lines = (CRATE / "src" / "main.rs").read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


@pytest.mark.parametrize("triple", TARGETS)
def test_shipped_binaries_are_stripped_and_linked_to_their_debug_file(release: Release, triple: str) -> None:
    binary, debug = shipped(release, triple), debug_file(release, triple)
    entry = load_record(release.folder).targets[triple]
    (recorded,) = entry.binaries
    sections = section_names(binary)
    if triple == MACOS:
        # Mach-O keeps its DWARF out of the binary anyway: what is left to strip is the symbol
        # table and its debug map, which the policy's rule judges; the dSYM shares the UUID.
        assert not any(name.startswith("__debug") for name in sections), sections
        assert {f"__{name[1:]}" for name in DWARF} <= section_names(debug)
        stripped = next(v for v in recorded.verdicts if v["rule"] == "stripped")
        assert stripped["ok"], stripped
        assert macho_uuid(binary) == macho_uuid(debug) is not None
        assert recorded.debug is not None and recorded.debug.kind == "dsym"
    else:
        assert not sections & {*DWARF, ".symtab"}, sections
        assert not any(name.startswith(".debug_") and name != ".debug_gdb_scripts" for name in sections), sections
        assert set(DWARF) <= section_names(debug)
        link = gnu_debuglink(binary)
        assert link == (debug.name, zlib.crc32(debug.read_bytes())), link
        if triple in LINUX:
            assert elf_build_id(binary) == elf_build_id(debug) or elf_build_id(binary) is None
        assert recorded.debug is not None and recorded.debug.kind == "debuglink"
    # The record carries the debug file: where it was written and its digest.
    assert recorded.debug.sha256 == hashlib.sha256(debug.read_bytes()).hexdigest()
    assert recorded.debug.path.is_file()


@pytest.mark.parametrize("triple", RUNNABLE)
def test_the_stripped_binary_still_runs(release: Release, triple: str) -> None:
    binary = shipped(release, triple)
    _, prefix, env = launcher(load_catalog().target(triple), host_platform())
    ran = subprocess.run([*prefix, str(binary), "abc"], capture_output=True, text=True, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("checksum "), ran.stdout


def test_debug_archives_are_listed_hashed_signed_and_in_provenance_but_not_in_user_archives(
    release: Release,
) -> None:
    folder = release.folder
    verify_release(folder, release.public_key)  # digests, signatures, provenance subjects, members
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    debug = {a["name"]: a for a in manifest["artifacts"] if a["kind"] == "debug-symbols"}
    assert sorted(debug) == sorted(f"{APP}-{t}-debug.{'zip' if 'windows' in t else 'tar.xz'}" for t in TARGETS)
    sums = (folder / SUMS_NAME).read_text()
    subjects = {s["name"] for s in json.loads((folder / PROVENANCE_NAME).read_text())["subject"]}
    for name, artifact in debug.items():
        assert f"{artifact['sha256']}  {name}" in sums
        assert (folder / f"{name}.minisig").is_file() and (folder / f"{name}.sha256").is_file()
        assert name in subjects
        triple = artifact["target"]
        top = name.removesuffix(".zip").removesuffix(".tar.xz")
        assert f"{top}/{debug_member(triple)}" in [m["path"] for m in artifact["members"]]
    # Users never get it: no installer, latest.json or user archive names it.
    for archive in (a for a in manifest["artifacts"] if a["kind"] == "archive"):
        assert not any(m["path"].endswith(".debug") or ".dSYM/" in m["path"] for m in archive["members"])
    for pointer in [folder / "latest.json", *folder.glob("*-installer.*")]:
        assert "-debug." not in pointer.read_text(), pointer.name


def test_debug_archives_are_written_at_the_fast_level_and_user_archives_at_the_release_one(
    release: Release,
) -> None:
    from toolchain.release.package import DEBUG_LEVEL, RELEASE_LEVEL

    stamps = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in (release.folder / ".stamps").glob("*")}
    archives = {n: s["level"] for n, s in stamps.items() if n.endswith((".tar.xz", ".zip"))}
    debug = {n for n in archives if "-debug." in n}
    assert debug and len(archives) > len(debug), archives
    assert all(archives[n] == (DEBUG_LEVEL if n in debug else RELEASE_LEVEL) for n in archives), archives


def test_a_tampered_debug_archive_fails_the_release_check(release: Release, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(release.folder, copy)
    name = f"{APP}-{LINUX[0]}-debug.tar.xz"
    (copy / name).write_bytes((copy / name).read_bytes() + b"\0")
    from toolchain.errors import ReleaseCheckError

    with pytest.raises(ReleaseCheckError, match=re.escape(name)):
        verify_release(copy, release.public_key)


@pytest.mark.parametrize("triple", TARGETS)
def test_symbolicate_maps_a_known_function_to_its_name_and_line(release: Release, triple: str) -> None:
    debug = debug_file(release, triple)
    address = function_address(debug, "corpus_checksum")
    base = "corpus-symbols.exe" if "windows" in triple else APP
    result = run_invoke(
        "symbolicate",
        "--target",
        triple,
        "--release-folder",
        str(release.folder),
        "--address",
        f"0x{address:x}",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    (frame,) = json.loads(result.stdout)["frames"]
    outer = frame["locations"][-1]
    assert outer["function"] == "corpus_symbols::corpus_checksum"
    assert outer["file"].endswith("src/main.rs")
    assert outer["line"] in range(source_line("fn corpus_checksum"), source_line("fn load_base"))
    # The same address as an offset from the load base, in glibc's and perf's forms.
    from toolchain.release.symbolicate import image_of

    offset = address - image_of(APP, debug).base  # a PIE's is 0; a PE's is its ImageBase
    for form in (f"{base}+0x{offset:x}", f"/opt/bin/{base}(+0x{offset:x})"):
        again = run_invoke(
            "symbolicate", "--target", triple, "--release-folder", str(release.folder), "--address", form, "--json"
        )
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["frames"][0]["locations"] == frame["locations"], form


@pytest.mark.parametrize("triple", LINUX)
def test_symbolicate_reads_a_real_backtrace_of_the_stripped_binary(release: Release, triple: str) -> None:
    """The shipped binary panics with RUST_BACKTRACE=full: `<unknown>` frames at runtime
    addresses; with the load base it printed, symbolicate names corpus_crash and its panic line."""
    _, prefix, env = launcher(load_catalog().target(triple), host_platform())
    crashed = subprocess.run(
        [*prefix, str(shipped(release, triple)), "crash"],
        capture_output=True,
        text=True,
        env={**env, "RUST_BACKTRACE": "full"},
        timeout=120,
    )
    assert crashed.returncode != 0
    assert "<unknown>" in crashed.stderr, crashed.stderr  # stripped: the binary cannot name its frames
    load_base = re.search(r"load base (0x[0-9a-f]+)", crashed.stderr)
    assert load_base, crashed.stderr
    result = subprocess.run(
        [
            "python3",
            "-m",
            "invoke",
            "--search-root",
            str(REPO_ROOT),
            "symbolicate",
            "--target",
            triple,
            "--release-folder",
            str(release.folder),
            "--load-base",
            load_base.group(1),
            "--json",
        ],
        input=crashed.stderr,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)["frames"]
    named = [loc for f in frames for loc in f["locations"] if loc["function"] == "corpus_symbols::corpus_crash"]
    assert named, frames
    assert named[0]["line"] == source_line('panic!("corpus crash'), named[0]
    assert named[0]["file"].endswith("src/main.rs")


def test_symbolicate_errors_are_one_line(release: Release) -> None:
    missing = run_invoke(
        "symbolicate", "--target", "aarch64-apple-darwin", "--release-folder", str(release.folder), "--address", "0x1"
    )
    assert missing.returncode == 2, missing.stderr
    assert "has no debug symbols for aarch64-apple-darwin" in missing.stderr
    assert "Traceback" not in missing.stderr
    outside = run_invoke(
        "symbolicate", "--target", LINUX[0], "--release-folder", str(release.folder), "--address", "0x7fffdead0000"
    )
    assert outside.returncode == 0
    assert "pass --load-base" in outside.stdout + outside.stderr


def test_a_crate_without_debug_info_ships_no_debug_artifact(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "plain", "plain-nodebug")
    folder = tmp_path / "dist"
    report = build(BuildOptions(targets=(LINUX[0],), manifest_path=manifest, out_dir=folder))
    assert report.ok
    entry = load_record(folder).targets[LINUX[0]]
    assert entry.debug_artifacts == ()
    assert all(b.debug is None for b in entry.binaries)
    assert not list(folder.glob("*-debug.*"))


def test_debug_archives_are_published_beside_the_archives(
    release: Release, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real S3 endpoint (moto's server): every debug archive, with its checksum and
    signature, lands under the release's version prefix like the archives."""
    import boto3

    from toolchain.release.publish import publish_s3, release_info
    from toolchain.release.s3 import S3Target

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="debug-symbols")
    target = S3Target("debug-symbols", "downloads", s3_endpoint, "us-east-1")
    publish_s3(release_info(release.folder, release.public_key), target, client=client)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="debug-symbols")["Contents"]}
    for triple in TARGETS:
        name = f"{APP}-{triple}-debug.{'zip' if 'windows' in triple else 'tar.xz'}"
        for suffix in ("", ".sha256", ".minisig"):
            assert f"downloads/{APP}/0.1.0/{name}{suffix}" in keys, sorted(keys)


def test_merged_build_folders_keep_their_debug_archives(release: Release, tmp_path: Path) -> None:
    """CI builds each target in its own job: merging their folders carries the debug archives
    along, and none of them counts as a stale file of another build."""
    from toolchain.compile.stale import stale_files
    from toolchain.release.folder import merge_parts

    part = tmp_path / "parts" / "all"
    shutil.copytree(release.folder, part)
    merged = tmp_path / "merged"
    merge_parts(tmp_path / "parts", merged)
    for triple in TARGETS:
        name = f"{APP}-{triple}-debug.{'zip' if 'windows' in triple else 'tar.xz'}"
        assert (merged / name).read_bytes() == (release.folder / name).read_bytes()
        assert (merged / f"{name}.sha256").is_file()
    stale = [p.name for p in stale_files(release.folder, load_record(release.folder))]
    assert not [name for name in stale if "-debug." in name], stale


@pytest.mark.parametrize("split", ["packed", "unpacked"])
def test_a_profile_that_splits_its_own_debug_info_still_ships_all_of_it(tmp_path: Path, split: str) -> None:
    """`split-debuginfo = "packed"` (or "unpacked") in the crate's profile leaves the DWARF of its
    own code in a .dwp (or .dwo files) beside cargo's output, and only skeletons in the binary:
    the debug archive held those skeletons, and a crash address of the crate's own code had no
    file or line. The split after the link needs all of it in the linked binary."""
    crate = tmp_path / "crate"
    shutil.copytree(CRATE, crate, ignore=shutil.ignore_patterns("target"))
    manifest = crate / "Cargo.toml"
    manifest.write_text(manifest.read_text() + f'split-debuginfo = "{split}"\n')
    folder = tmp_path / "dist"
    host = LINUX[0]
    report = build(BuildOptions(targets=(host,), manifest_path=manifest, out_dir=folder))
    assert report.ok, [r.entry.error for r in report.results]
    package_release(folder, signing.generate(), "https://downloads.example/symbols/0.1.0", crate)
    (archive,) = folder.glob("*-debug.tar.xz")
    with tarfile.open(archive) as tarred:
        tarred.extractall(tmp_path / "debug", filter="data")
    debug = next((tmp_path / "debug").glob(f"*/{APP}.debug"))
    address = function_address(debug, "corpus_checksum")
    result = run_invoke(
        "symbolicate", "--target", host, "--release-folder", str(folder), "--address", f"0x{address:x}", "--json"
    )
    assert result.returncode == 0, result.stderr
    outer = json.loads(result.stdout)["frames"][0]["locations"][-1]
    assert outer["function"] == "corpus_symbols::corpus_checksum"
    assert outer["file"].endswith("src/main.rs"), outer
    assert outer["line"] in range(source_line("fn corpus_checksum"), source_line("fn load_base")), outer
