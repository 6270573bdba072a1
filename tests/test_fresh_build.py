"""The fresh check: a build with nothing changed since the same command's last
successful build reports that build's result without running cargo, and each
input it fingerprints, changed, makes the next build a real one. Real builds
of one small crate with a build script, through the CLI; then the library's
run_or_reuse and the pruning of the fingerprint store, on real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain.compile import fresh

HOST = "x86_64-unknown-linux-gnu"
# The app reads a constant of a library member whose build script takes it from a variable.
BUILD_RS = """fn main() {
    println!("cargo:rerun-if-env-changed=FRESH_FLAVOUR");
    let flavour = std::env::var("FRESH_FLAVOUR").unwrap_or_else(|_| "plain".into());
    println!("cargo:rustc-env=FLAVOUR={flavour}");
}
"""
LIB_RS = 'pub const FLAVOUR: &str = env!("FLAVOUR");\n'
MAIN_RS = 'fn main() { println!("{}", flavour::FLAVOUR); }\n'


@pytest.fixture(scope="module")
def shims(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder first on PATH with a cargo-zigbuild that runs the real one."""
    folder = tmp_path_factory.mktemp("shims")
    real = shutil.which("cargo-zigbuild")
    assert real is not None
    shim = folder / "cargo-zigbuild"
    shim.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory, shims: Path) -> Iterator[Path]:
    """The app (no build script: only cargo's dep-info names its sources) and, in flavour/,
    a library member with a build script (the check watches every file of that one)."""
    root = tmp_path_factory.mktemp("fresh") / "freshapp"
    make_crate(root, "freshapp", main_rs=MAIN_RS, manifest_extra='flavour = { path = "flavour" }\n\n[workspace]\n')
    make_crate(root / "flavour", "flavour", main_rs=None, lib_rs=LIB_RS)
    (root / "flavour" / "build.rs").write_text(BUILD_RS)
    assert build(root, shims)["fresh"] is False
    settle(root, shims)
    yield root


def build(root: Path, shims: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = run_invoke(
        "build", "--profile", "fast", "--manifest-path", str(root / "Cargo.toml"), "--out-dir", str(root / "dist"),
        "--json", *extra,
        cwd=root, env={"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}", **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # A real build ends without freeing its objects (gc.freeze): LIEF must not call them leaks.
    assert "leaked" not in done.stderr, done.stderr[-2000:]
    report: dict[str, object] = json.loads(done.stdout)
    assert report["ok"] is True
    assert ("fresh: nothing changed" in done.stderr) is report["fresh"]
    return report


def settle(root: Path, shims: Path, env: dict[str, str] | None = None) -> None:
    """Build until a build is fresh: the build after a change may see its own folder made
    (dist/, target/) while it ran and leave no fingerprint; the one after it does."""
    for _ in range(2):
        if build(root, shims, env=env)["fresh"]:
            return
    assert build(root, shims, env=env)["fresh"] is True


def binary(root: Path) -> Path:
    return root / "target" / HOST / "fast" / "freshapp"


def test_a_noop_build_is_fresh_and_reports_the_last_result(crate: Path, shims: Path) -> None:
    archive = crate / "dist" / f"freshapp-{HOST}.tar.xz"
    manifest = crate / "dist" / "manifest.json"
    before = (archive.stat().st_mtime_ns, manifest.stat().st_mtime_ns, binary(crate).stat().st_mtime_ns)
    again = build(crate, shims)
    assert again["fresh"] is True
    assert again["targets"][0]["target"] == HOST  # type: ignore[index]
    assert again["targets"][0]["artifacts"][0]["path"] == str(archive)  # type: ignore[index]
    assert (archive.stat().st_mtime_ns, manifest.stat().st_mtime_ns, binary(crate).stat().st_mtime_ns) == before
    assert build(crate, shims, "--force")["fresh"] is False
    settle(crate, shims)


def test_the_build_after_one_that_made_its_output_folder_is_fresh(crate: Path, shims: Path) -> None:
    """The crate's folder (listed for license files) gains the new output folder while the
    build runs: only that, so the build is fingerprinted and the next one is fresh."""
    out = crate / "another-dist"
    args = ("build", "--profile", "fast", "--manifest-path", str(crate / "Cargo.toml"), "--json")
    env = {"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    try:
        for expected in (False, True):
            done = run_invoke(*args, "--out-dir", str(out), cwd=crate, env=env)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["fresh"] is expected, done.stderr
        (crate / "LICENSE").write_text("MIT\n")  # the listed folder gains a file the archive takes
        done = run_invoke(*args, "--out-dir", str(out), cwd=crate, env=env)
        assert json.loads(done.stdout)["fresh"] is False
    finally:
        shutil.rmtree(out)
        (crate / "LICENSE").unlink(missing_ok=True)
    settle(crate, shims)


def test_a_touched_or_edited_source_builds_again(crate: Path, shims: Path) -> None:
    main = crate / "src" / "main.rs"
    os.utime(main)
    assert build(crate, shims)["fresh"] is False
    settle(crate, shims)
    main.write_text(MAIN_RS.replace('"{}"', '"edited {}"'))
    try:
        assert build(crate, shims)["fresh"] is False
        assert b"edited" in binary(crate).read_bytes()
    finally:
        main.write_text(MAIN_RS)
    settle(crate, shims)


def test_a_changed_cargo_lock_builds_again(crate: Path, shims: Path) -> None:
    lock = crate / "Cargo.lock"
    text = lock.read_text()
    lock.write_text(text + "\n")
    try:
        assert build(crate, shims)["fresh"] is False
    finally:
        lock.write_text(text)
    settle(crate, shims)


def test_a_variable_the_build_script_reads_builds_again(crate: Path, shims: Path) -> None:
    flavoured = {"FRESH_FLAVOUR": "minty"}
    assert build(crate, shims, env=flavoured)["fresh"] is False
    assert b"minty" in binary(crate).read_bytes()
    settle(crate, shims, env=flavoured)
    assert build(crate, shims)["fresh"] is False  # unset again
    settle(crate, shims)


def test_a_new_file_in_a_package_with_a_build_script_builds_again(crate: Path, shims: Path) -> None:
    """cargo reruns a build script that names no rerun-if-changed path on any change in
    its package; the check does not ask which kind it is and watches the whole package."""
    extra = crate / "flavour" / "data" / "table.txt"
    extra.parent.mkdir()
    extra.write_text("1\n")
    try:
        assert build(crate, shims)["fresh"] is False
        settle(crate, shims)
        extra.write_text("2\n")
        assert build(crate, shims)["fresh"] is False
    finally:
        shutil.rmtree(extra.parent)
    settle(crate, shims)


def test_a_settings_or_policy_file_builds_again(crate: Path, shims: Path) -> None:
    # Settings are looked for upwards from the current folder: one made in a folder above counts.
    above = crate.parent / "toolchain.toml"
    above.write_text("")
    try:
        assert build(crate, shims)["fresh"] is False
    finally:
        above.unlink()
    settle(crate, shims)
    settings = crate / "toolchain.toml"
    settings.write_text("")  # created where there was none
    try:
        assert build(crate, shims)["fresh"] is False
        settle(crate, shims)
        settings.write_text('[package]\ninclude = ["Cargo.toml"]\n')
        report = build(crate, shims)
        assert report["fresh"] is False
        policies = crate / "policies"
        policies.mkdir()
        (policies / "linux.toml").write_text('[rules]\nstack-protector = "report"\n')
        assert build(crate, shims)["fresh"] is False
        settle(crate, shims)
        (policies / "linux.toml").write_text('[rules]\nstack-protector = "warn"\n')
        assert build(crate, shims)["fresh"] is False
    finally:
        settings.unlink()
        shutil.rmtree(crate / "policies", ignore_errors=True)
    settle(crate, shims)


def test_a_settings_file_made_in_the_named_members_folder_builds_again(tmp_path: Path, shims: Path) -> None:
    """Settings are looked for upwards from the folder of --manifest-path, here a
    workspace member below the root, run from an unrelated folder."""
    root = tmp_path / "freshspace"
    root.mkdir()
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["tool"]\nresolver = "2"\n')
    make_crate(root / "tool", "freshtool")
    # A first build that makes Cargo.lock leaves no fingerprint (an input created while it ran): made first.
    subprocess.run(["cargo", "generate-lockfile", "--offline", "--manifest-path", str(root / "Cargo.toml")], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    manifest, out = str(root / "tool" / "Cargo.toml"), str(root / "dist")
    args = ("build", "--profile", "fast", "--manifest-path", manifest, "--out-dir", out, "--json")

    def fresh() -> bool:
        done = run_invoke(*args, cwd=elsewhere, env=env)
        assert done.returncode == 0, done.stderr
        return bool(json.loads(done.stdout)["fresh"])

    assert fresh() is False
    assert fresh() is True
    (root / "tool" / "toolchain.toml").write_text("")
    assert fresh() is False


def test_a_deleted_archive_or_an_altered_binary_builds_again(crate: Path, shims: Path) -> None:
    archive = crate / "dist" / f"freshapp-{HOST}.tar.xz"
    archive.unlink()
    assert build(crate, shims)["fresh"] is False
    assert archive.is_file()
    settle(crate, shims)
    with binary(crate).open("ab") as handle:
        handle.write(b"\0")
    assert build(crate, shims)["fresh"] is False
    os.utime(crate / "src" / "main.rs")  # cargo links it again
    settle(crate, shims)


def test_a_changed_tool_on_path_builds_again(crate: Path, shims: Path) -> None:
    shim = shims / "cargo-zigbuild"
    shim.write_text(shim.read_text() + "# another version\n")
    assert build(crate, shims)["fresh"] is False
    settle(crate, shims)


def test_a_changed_cargo_home_config_builds_again(crate: Path, shims: Path, tmp_path: Path) -> None:
    """cargo reads $CARGO_HOME/config.toml, outside the project: made or edited, it counts.
    A cargo home of the test's own, sharing the real one's tools and downloads."""
    real = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    home = tmp_path / "cargo-home"
    home.mkdir()
    for name in ("bin", "registry", "git"):
        if (real / name).exists():
            (home / name).symlink_to(real / name)
    env = {"CARGO_HOME": str(home)}
    settle(crate, shims, env=env)
    config = home / "config.toml"
    config.write_text("[term]\nverbose = false\n")
    assert build(crate, shims, env=env)["fresh"] is False
    settle(crate, shims, env=env)
    config.write_text("[term]\nquiet = false\n")
    assert build(crate, shims, env=env)["fresh"] is False
    settle(crate, shims)


def test_a_source_changed_while_the_build_ran_is_not_fingerprinted(crate: Path, shims: Path) -> None:
    """A file whose time is after the build began may have been read before its change:
    no fingerprint is written, and the next build is a real one too."""
    main = crate / "src" / "main.rs"
    later = time.time() + 3600
    os.utime(main, (later, later))
    try:
        assert build(crate, shims)["fresh"] is False
        assert build(crate, shims)["fresh"] is False
    finally:
        os.utime(main)
    settle(crate, shims)


def test_dep_info_that_names_paths_not_here_leaves_no_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container build's dep-info names the container's paths, and `dep-info-basedir`
    makes them relative: neither can be watched, so no fingerprint is written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "src dir" / "main.rs"
    source.parent.mkdir()
    source.write_text(MAIN_RS)
    binary = tmp_path / "target" / "app"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF")
    depinfo = binary.with_name("app.d")
    escaped = str(source).replace(" ", "\\ ")

    def save() -> str | None:
        reads = fresh.Reads.start()
        watched = fresh.Watched(
            workspace_root=tmp_path, target_directory=tmp_path / "target", out_dir=tmp_path / "out",
            manifests=(), build_script_roots=(), binaries=(binary,), sysroots=(),
        )  # fmt: skip
        return fresh.save("k", reads, 0, {}, watched)

    depinfo.write_text(f"{binary}: {escaped}\n")
    assert fresh.dep_info_paths(binary) == [str(source)]  # make's "\ " is a space in a name
    depinfo.write_text(f"{binary}: {escaped} /project/src/lib.rs\n")
    assert save() == "app's dep-info names /project/src/lib.rs, which is not here"
    depinfo.write_text(f"{binary}: src/main.rs\n")
    assert save() == f"no usable dep-info beside {binary}"
    assert not (tmp_path / "cache" / "toolchain" / "fresh" / "k.json").exists()


def test_a_listed_folder_that_gained_anything_but_an_output_folder_changed(tmp_path: Path) -> None:
    folder = tmp_path / "crate"
    (folder / "src").mkdir(parents=True)
    reads = fresh.Reads()
    reads.listings[str(folder)] = frozenset({"src"})
    outputs = {str(folder / "target"), str(folder / "out" / "dist")}
    (folder / "target").mkdir()
    (folder / "out" / "dist").mkdir(parents=True)
    assert fresh._gained_only(str(folder), reads, outputs)  # target/, and out/ which holds dist/
    (folder / "policies").mkdir()
    assert not fresh._gained_only(str(folder), reads, outputs)
    (folder / "policies").rmdir()
    (folder / "src").rmdir()
    assert not fresh._gained_only(str(folder), reads, outputs)  # lost one


# The library: fresh.run_or_reuse around a stand-in command whose "build" is a source file
# and a binary with cargo's dep-info beside it (real files; no cargo needed to watch them).


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fingerprint store of its own, and a built project's files in tmp_path/'app'."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.rs").write_text(MAIN_RS)
    (root / "Cargo.toml").write_text('[package]\nname = "app"\n')
    (root / "target").mkdir()
    (root / "target" / "app").write_bytes(b"\x7fELF")
    (root / "target" / "app.d").write_text(f"{root / 'target' / 'app'}: {root / 'src' / 'main.rs'}\n")
    (root / "dist").mkdir()
    (root / "dist" / "app.tar.xz").write_bytes(b"archive")
    return root


def watched(root: Path, binary: str = "app", day: str | None = None) -> fresh.Watched:
    return fresh.Watched(
        workspace_root=root, target_directory=root / "target", out_dir=root / "dist",
        manifests=(root / "Cargo.toml",), build_script_roots=(), binaries=(root / "target" / binary,), sysroots=(),
        day=day,
    )  # fmt: skip


class Command:
    """A command run through run_or_reuse: counts its real runs."""

    def __init__(self, root: Path, *, ok: bool = True, binary: str = "app", day: str | None = None) -> None:
        self.root, self.ok, self.binary, self.runs, self.day = root, ok, binary, 0, day
        self.options: dict[str, str] = {}

    def run(self) -> fresh.FreshResult:
        self.runs += 1
        return fresh.FreshResult(
            ok=self.ok, document={"run": self.runs}, title="Build summary", columns=["target", "verdict"],
            rows=[[HOST, "ok"]], notes=("build timings: page.html",), watched=watched(self.root, self.binary, self.day),
        )  # fmt: skip

    def __call__(self, *, force: bool = False, json: bool = True, options: dict[str, str] | None = None) -> bool:
        """Whether this call was fresh."""
        self.options = options or {"profile": "fast"}
        outcome = fresh.run_or_reuse(self.options, self.run, force=force, json=json)
        assert outcome.ok is self.ok
        return outcome.fresh


def test_run_or_reuse_prints_the_stored_result_until_an_input_changes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = Command(project)
    assert command() is False
    out, err = capsys.readouterr()
    assert json.loads(out) == {"run": 1, "fresh": False}
    assert "build timings: page.html" in err
    assert "next build runs cargo again" not in err
    assert command() is True
    out, err = capsys.readouterr()
    assert json.loads(out) == {"run": 1, "fresh": True}
    assert "fresh: nothing changed" in err and "build timings" not in err  # the run's notes are its own
    assert command(json=False) is True
    out, _ = capsys.readouterr()
    assert out.splitlines()[0] == "Build summary" and HOST in out  # the stored table, as the run printed it
    assert command.runs == 1
    assert command(force=True) is False
    assert command(options={"profile": "size"}) is False  # another command
    assert command() is True
    os.utime(project / "src" / "main.rs", (1, 1))  # a source dep-info names
    assert command() is False
    assert command() is True
    assert command.runs == 4


class Tomorrow(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Tomorrow:
        moment = datetime.now(tz) + timedelta(days=1)
        return cls.fromtimestamp(moment.timestamp(), tz)


def test_a_fingerprint_of_dated_outputs_is_fresh_only_on_their_day(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The day the release folder's stamp names (Watched.day) is an input: another UTC day
    is not fresh, and says why; a folder with no dated files (day None) does not depend on it."""
    from toolchain import dated

    today = dated.utc_day()
    dated_command, plain = Command(project, day=today), Command(project)
    assert dated_command(options={"dated": "yes"}) is False and plain() is False
    assert dated_command(options={"dated": "yes"}) is True and plain() is True
    monkeypatch.setattr(dated, "datetime", Tomorrow)
    capsys.readouterr()
    assert dated_command(options={"dated": "yes"}) is False
    assert f"the release folder's dated files (latest.json) are of {today}: building again" in capsys.readouterr().err
    assert plain() is True


def test_a_failed_run_or_an_unwatchable_one_is_not_fingerprinted(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = Command(project, ok=False)
    assert failing() is False
    assert failing() is False
    assert failing.runs == 2
    assert not fresh.store_dir().exists()
    no_dep_info = Command(project, binary="other")
    (project / "target" / "other").write_bytes(b"\x7fELF")
    assert no_dep_info() is False
    assert f"the next build runs cargo again: no usable dep-info beside {project / 'target' / 'other'}" in (
        capsys.readouterr().err
    )
    assert no_dep_info() is False
    assert not fresh.store_dir().exists()


def test_a_store_that_cannot_be_written_costs_only_the_next_build(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # the store's folder cannot be made
    command = Command(project)
    assert command() is False
    assert f"the next build runs cargo again: cannot write to {blocked}/toolchain/fresh" in capsys.readouterr().err
    assert command() is False


def _aged(folder: Path, name: str, days: float, now: float) -> Path:
    path = folder / name
    path.write_text("{}")
    os.utime(path, (now - days * 86400, now - days * 86400))
    return path


def test_saving_prunes_unused_fingerprints_and_a_hit_keeps_its_own(project: Path) -> None:
    store = fresh.store_dir()
    store.mkdir(parents=True)
    now = time.time()
    stale = _aged(store, "stale.json", 31, now)
    partial = _aged(store, ".crashed.123.partial", 40, now)
    recent = _aged(store, "recent.json", 29, now)
    command = Command(project)
    assert command() is False
    assert not stale.exists() and not partial.exists()
    assert recent.exists()
    (ours,) = set(store.glob("*.json")) - {recent}
    os.utime(ours, (now - 29 * 86400, now - 29 * 86400))
    assert command() is True
    assert ours.stat().st_mtime > now - 60  # used: touched
    assert command(options={"profile": "size"}) is False  # another save: a prune
    assert ours.exists()


def test_prune_keeps_the_newest_and_goes_past_what_it_cannot_remove(tmp_path: Path) -> None:
    now = time.time()
    store = tmp_path / "fresh"
    store.mkdir()
    # Minutes apart, all recent: only the cap removes any.
    files = [_aged(store, f"{n:03}.json", n / 1440, now) for n in range(fresh.KEEP_NEWEST + 5)]
    folder = store / "old-folder.json"  # cannot be unlinked: passed over
    folder.mkdir()
    os.utime(folder, (now - 90 * 86400, now - 90 * 86400))
    (store / "dangling.json").symlink_to(store / "gone")  # vanished before its stat: passed over
    fresh.prune(store, now)
    assert sorted(p.name for p in store.iterdir()) == sorted(
        [*(f.name for f in files[: fresh.KEEP_NEWEST]), "old-folder.json", "dangling.json"]
    )
    fresh.prune(tmp_path / "absent", now)  # no store yet: nothing to do


def test_a_noop_build_the_next_day_renews_latest_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fresh check and the release folder's stamp agree on the date (toolchain/dated.py):
    nothing changed but the UTC day, the next build is not fresh, says why, and its release
    folder renews latest.json's `released` and `expires`; the build after it is fresh again.
    In-process, so the clock can be moved a day on."""
    from toolchain import dated
    from toolchain.pipeline.command import build_command
    from toolchain.records.build_options import BuildOptions
    from toolchain.release import latest

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a store of its own
    root = tmp_path / "datedapp"
    manifest = make_crate(root, "datedapp")
    # A first build that makes Cargo.lock leaves no fingerprint (an input created while it ran): made first.
    subprocess.run(["cargo", "generate-lockfile", "--offline", "--manifest-path", str(manifest)], check=True)
    monkeypatch.chdir(root)
    options = BuildOptions(profile="fast", manifest_path=manifest, out_dir=root / "dist")
    pointer = root / "dist" / "latest.json"

    def build() -> tuple[bool, str]:
        """Whether the build was fresh, and what it logged."""
        capsys.readouterr()
        assert build_command(options, json=True)
        captured = capsys.readouterr()
        return bool(json.loads(captured.out)["fresh"]), captured.err

    def dates() -> tuple[str, str]:
        document = json.loads(pointer.read_text())
        return document["released"], document["expires"]

    assert build()[0] is False
    assert build()[0] is True
    today = dates()
    assert today[0][:10] == dated.utc_day()

    monkeypatch.setattr(dated, "datetime", Tomorrow)
    monkeypatch.setattr(latest, "datetime", Tomorrow)
    was_fresh, logged = build()
    assert was_fresh is False
    assert f"the release folder's dated files (latest.json) are of {today[0][:10]}: building again" in logged
    assert "made again: day changed" in logged
    renewed = dates()
    assert renewed[0][:10] == dated.utc_day() != today[0][:10] and renewed[1] > today[1]
    assert build()[0] is True and dates() == renewed


def test_the_machines_link_scan_cache_that_the_build_wrote_is_not_an_input(project: Path) -> None:
    """A macOS build's SDK check reads the machine-wide scan cache and adds the packages it
    scanned (keyed by checksum: what it says of one package never changes). That write said
    "link-scan.json changed while the build ran", so the build after it ran cargo again."""
    from toolchain.compile.links import ScanCache

    class Scanning(Command):
        def run(self) -> fresh.FreshResult:
            cache = ScanCache()  # read, as the SDK check reads it
            cache.entries[f"package {self.runs}#checksum"] = []
            cache.changed = True
            cache.save()
            return super().run()

    ScanCache().path.parent.mkdir(parents=True, exist_ok=True)
    ScanCache().path.write_text('{"schema": 0, "packages": {}}')
    command = Scanning(project)
    assert command() is False
    assert command() is True, "the next build ran again"
