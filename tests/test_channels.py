"""Release channels for real: the demo built for x86_64 and aarch64 Linux and
for Windows (gnu), packaged with every format on, then each package handed
to the real tool that consumes it: dpkg installs the .deb into a throwaway
root and the binary runs there (aarch64 under qemu), lintian checks it, rpm
reads the .rpm, msiinfo reads the MSI and wine's msiexec installs it and
then upgrades it with a newer build. The SBOMs validate against CycloneDX's
schema and list exactly what `cargo tree` lists for their target."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.config.catalog import load_catalog
from toolchain.config.targets import host_platform
from toolchain.digest import sha256_file
from toolchain.errors import ConfigError, ProjectError, ReleaseCheckError, ToolchainError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.records.build_record import TargetEntry
from toolchain.release.channels.crates import resolve
from toolchain.release.channels.msi import upgrade_code
from toolchain.release.channels.nfpm import LINTIAN_ACCEPTED
from toolchain.release.channels.sbom import validate_sbom
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, package_release, verify_release
from toolchain.release.signing import SecretKey, generate, sign_file
from toolchain.verify.smoke import WINE, launcher, wine_prefix

pytestmark = pytest.mark.slow

ALL = ("sbom", "deb", "rpm", "apk", "msi", "homebrew", "scoop")
LINUX = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")
WINDOWS = "x86_64-pc-windows-gnu"
EPOCH = "1700000000"
URL = "https://downloads.example.org/tally/0.1.0"
METADATA = 'authors = ["Tally Maintainers <tally@example.org>"]\nhomepage = "https://example.org/tally"\n'
DEBS = {"x86_64-unknown-linux-gnu": "tally_0.1.0_amd64.deb", "aarch64-unknown-linux-gnu": "tally_0.1.0_arm64.deb"}
RPMS = {
    "x86_64-unknown-linux-gnu": "tally-0.1.0-1.x86_64.rpm",
    "aarch64-unknown-linux-gnu": "tally-0.1.0-1.aarch64.rpm",
}


@dataclass(frozen=True)
class Release:
    folder: Path
    crate: Path  # the demo copy it was built from
    key: SecretKey


def demo_copy(root: Path, version: str = "0.1.0") -> Path:
    """The demo with the fields only a project can supply (maintainer, homepage), at `version`."""
    crate = root / f"tally-{version}"
    shutil.copytree(REPO_ROOT / "demo", crate, ignore=shutil.ignore_patterns("target", "dist"))
    manifest = crate / "Cargo.toml"
    text = manifest.read_text().replace('license = "MIT"\n', f'license = "MIT"\n{METADATA}')
    manifest.write_text(text.replace('version = "0.1.0"', f'version = "{version}"', 1))
    lock = crate / "Cargo.lock"
    lock.write_text(
        lock.read_text().replace('name = "tally"\nversion = "0.1.0"', f'name = "tally"\nversion = "{version}"')
    )
    return manifest


def build_and_package(root: Path, version: str, targets: tuple[str, ...], key: SecretKey) -> Release:
    manifest = demo_copy(root, version)
    folder = root / f"dist-{version}"
    report = build(BuildOptions(manifest_path=manifest, targets=targets, profile="fast", out_dir=folder))
    assert report.ok
    package_release(folder, key, URL, manifest.parent, formats=ALL)
    return Release(folder, manifest.parent, key)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Release:
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        return build_and_package(tmp_path_factory.mktemp("channels"), "0.1.0", (*LINUX, WINDOWS), generate())
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]


def run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout


def test_the_folder_lists_signs_and_verifies_every_channel_file(release: Release) -> None:
    manifest = json.loads((release.folder / MANIFEST_NAME).read_text())
    kinds = sorted(a["kind"] for a in manifest["artifacts"])
    # 3 archives; 2 .deb, .rpm and .apk; 1 MSI; an SBOM for each of those 10; one formula and one Scoop manifest.
    assert kinds.count("deb") == kinds.count("rpm") == kinds.count("apk") == 2 and kinds.count("msi") == 1
    assert kinds.count("sbom") == 10 and kinds.count("homebrew") == kinds.count("scoop") == 1
    jsonschema = pytest.importorskip("jsonschema")
    schema = REPO_ROOT / "toolchain" / "data" / "schemas" / "manifest.schema.json"
    jsonschema.validate(manifest, json.loads(schema.read_text()))
    statement = json.loads((release.folder / "provenance.intoto.json").read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    for artifact in manifest["artifacts"]:
        if artifact["kind"] != "provenance":
            assert subjects[artifact["name"]] == artifact["sha256"] == sha256_file(release.folder / artifact["name"])
            assert (release.folder / f"{artifact['name']}.minisig").is_file()
    checked = verify_release(release.folder, release.key.public_key().render())
    assert "tally_0.1.0_amd64.deb" in checked and "tally-0.1.0-x64.msi.cdx.json" in checked


def test_the_deb_installs_with_dpkg_into_a_throwaway_root_and_runs(release: Release, tmp_path: Path) -> None:
    host_status = Path("/var/lib/dpkg/status").read_text().split("\n\n")
    for triple, name in DEBS.items():
        root = tmp_path / triple
        admin = root / "var" / "lib" / "dpkg"
        (admin / "info").mkdir(parents=True)
        (admin / "updates").mkdir()
        # The root's package database knows the host's libc6 (both architectures): the Depends line is checked for real.
        libc = [p for p in host_status if re.search(r"^Package: libc6$", p, re.MULTILINE)]
        (admin / "status").write_text("\n\n".join(libc) + "\n\n")
        run("dpkg", f"--admindir={admin}", "--add-architecture", "arm64")
        run("dpkg", f"--root={root}", f"--admindir={admin}", "--force-script-chrootless", "--force-not-root",
            "-i", release.folder / name)  # fmt: skip
        assert "ii  tally" in run("dpkg", f"--admindir={admin}", "-l", "tally")
        binary = root / "usr" / "bin" / "tally"
        _, prefix, _ = launcher(load_catalog().target(triple), host_platform())  # qemu for aarch64, as smoke runs it
        assert run(*prefix, binary, "--version").strip() == "tally 0.1.0"
        docs = root / "usr" / "share" / "doc" / "tally"
        assert sorted(p.name for p in docs.iterdir()) == ["README.md", "changelog.gz", "copyright"]
        assert "MIT License" in (docs / "copyright").read_text()
        assert "tally (0.1.0) unstable" in gzip.decompress((docs / "changelog.gz").read_bytes()).decode()
        control = run("dpkg-deb", "--field", release.folder / name)
        assert "Depends: libc6 (>= 2.17)" in control and "Maintainer: Tally Maintainers <tally@example.org>" in control
        assert f"Architecture: {'arm64' if triple.startswith('aarch64') else 'amd64'}" in control


def test_the_deb_is_lintian_clean_but_for_the_listed_tags(release: Release) -> None:
    done = subprocess.run(
        ["lintian", "--no-cfg", "--allow-root", release.folder / DEBS["x86_64-unknown-linux-gnu"]],
        capture_output=True,
        text=True,
        check=False,
    )
    tags = {m.group(2) for m in re.finditer(r"^([EWIPX]): tally: (\S+)", done.stdout, re.MULTILINE)}
    assert done.returncode in (0, 1), done.stderr  # lintian exits 1 when it reports a tag
    assert tags <= set(LINTIAN_ACCEPTED), f"unjustified lintian tags: {sorted(tags - set(LINTIAN_ACCEPTED))}"
    assert "no-manual-page" in tags  # lintian really ran on the package


def test_the_rpm_has_the_right_name_version_architecture_and_files(release: Release, tmp_path: Path) -> None:
    for triple, name in RPMS.items():
        path = release.folder / name
        info = dict(re.findall(r"^(\w[\w ]*?)\s*: (.*)$", run("rpm", "-qip", path), re.MULTILINE))
        assert (info["Name"], info["Version"], info["Release"]) == ("tally", "0.1.0", "1")
        assert info["Architecture"] == triple.split("-")[0]
        assert info["License"] == "MIT" and info["URL"] == "https://example.org/tally"
        assert info["Build Host"] == "reproducible"
        files = run("rpm", "-qlp", path).split()
        assert files == ["/usr/bin/tally", "/usr/share/doc/tally/LICENSE", "/usr/share/doc/tally/README.md"]
        assert "glibc >= 2.17" in run("rpm", "-qpR", path)
    # rpm installs it (into a throwaway root, without that root's glibc) and the binary runs.
    root = tmp_path / "rpmroot"
    run("rpm", "--root", root, "--nodeps", "--noscripts", "-i", release.folder / RPMS["x86_64-unknown-linux-gnu"])
    assert run(root / "usr" / "bin" / "tally", "--version").strip() == "tally 0.1.0"


def test_the_apk_declares_its_package_and_holds_the_files(release: Release) -> None:
    # No apk tool on Debian: the package is read the way apk reads it (gzip'd tar streams, .PKGINFO first).
    with tarfile.open(release.folder / "tally-0.1.0-r0.aarch64.apk") as apk:
        names = apk.getnames()
        info_file = apk.extractfile(".PKGINFO")
        assert info_file is not None
        info = dict(line.split(" = ", 1) for line in info_file.read().decode().splitlines() if " = " in line)
    assert (info["pkgname"], info["pkgver"], info["arch"], info["depend"]) == (
        "tally",
        "0.1.0-r0",
        "aarch64",
        "gcompat",
    )
    assert {"usr/bin/tally", "usr/share/doc/tally/LICENSE", "usr/share/doc/tally/README.md"} <= set(names)


def msi_table(path: Path, table: str) -> list[list[str]]:
    return [line.split("\t") for line in run("msiinfo", "export", path, table).splitlines()[3:]]


def test_the_msi_tables(release: Release) -> None:
    msi = release.folder / "tally-0.1.0-x64.msi"
    tables = set(run("msiinfo", "tables", msi).split())
    assert {"File", "Component", "Directory", "Environment", "Upgrade", "Registry", "Property"} <= tables
    properties = dict((row[0], row[1]) for row in msi_table(msi, "Property"))
    assert properties["UpgradeCode"].lower() == "{" + str(upgrade_code("tally")) + "}"
    assert properties["ProductVersion"] == "0.1.0" and properties["ProductName"] == "tally"
    assert ["PathEntry", "=-PATH", "[~];[BINDIR]", "Binaries"] in msi_table(msi, "Environment")
    directories = {row[0]: row for row in msi_table(msi, "Directory")}
    assert directories["APPDIR"][1] == "LocalAppDataFolder" and directories["BINDIR"][1] == "APPDIR"
    assert {row[2].split("|")[-1] for row in msi_table(msi, "File")} == {"tally.exe", "LICENSE", "README.md"}
    summary = run("msiinfo", "suminfo", msi)
    assert "Template: x64;1033" in summary and "Created: Tue Nov 14 22:13:20 2023" in summary


def test_wine_installs_the_msi_per_user_and_a_newer_one_replaces_it(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a fresh wine prefix, thrown away after
    prefix = wine_prefix()
    env = {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml="}

    def wine(*argv: str | Path) -> str:
        return run(WINE, *argv, env=env).replace("\r", "")

    def installed() -> list[str]:
        uninstall = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall"
        keys = wine("reg", "query", uninstall).splitlines()
        codes = []
        for key in keys:
            if key.strip().startswith("HKEY") and key.strip().endswith("}"):
                values = wine("reg", "query", key.strip())
                if re.search(r"DisplayName\s+REG_SZ\s+tally$", values, re.MULTILINE):
                    codes.append(re.findall(r"DisplayVersion\s+REG_SZ\s+(\S+)", values)[0])
        return codes

    wine("msiexec", "/i", release.folder / "tally-0.1.0-x64.msi", "/qn")
    exe = next(prefix.glob("drive_c/users/*/AppData/Local/tally/bin/tally.exe"))
    assert wine("reg", "query", r"HKCU\Environment", "/v", "PATH").count(r"AppData\Local\tally\bin") == 1
    # cmd finds tally through the user PATH entry the MSI wrote.
    assert wine("cmd", "/c", "tally --version").strip() == "tally 0.1.0"
    assert installed() == ["0.1.0"]

    newer = build_and_package(tmp_path, "0.2.0", (WINDOWS,), release.key)
    wine("msiexec", "/i", newer.folder / "tally-0.2.0-x64.msi", "/qn")
    assert installed() == ["0.2.0"], "the older product was not removed"
    assert wine(exe, "--version").strip() == "tally 0.2.0"
    assert wine("cmd", "/c", "tally --version").strip() == "tally 0.2.0"
    assert wine("reg", "query", r"HKCU\Environment", "/v", "PATH").count(r"AppData\Local\tally\bin") == 1


def cargo_tree(
    manifest: Path, triple: str, package: str, features: tuple[str, ...] = (), depth: int | None = None
) -> set[str]:
    argv: list[str | Path] = [
        "cargo",
        "tree",
        "--manifest-path",
        manifest,
        "--target",
        triple,
        "-e",
        "normal",
        "--prefix",
        "none",
    ]
    argv += ["-p", package, "--locked", "-f", "{p}"] + (["--features", ",".join(features)] if features else [])
    argv += ["--depth", str(depth)] if depth is not None else []
    lines = run(*argv).splitlines()
    # "name v1.2.3 (/path) (*)" -> "name@1.2.3"; the first line is the package itself.
    return {re.sub(r"^(\S+) v(\S+).*$", r"\1@\2", line) for line in lines[1:] if line.strip()}


def test_each_sbom_validates_and_lists_what_cargo_tree_lists(release: Release) -> None:
    lock = {
        (p["name"], p["version"]): p.get("checksum")
        for p in tomllib.loads((release.crate / "Cargo.lock").read_text())["package"]
    }
    manifest = json.loads((release.folder / MANIFEST_NAME).read_text())
    for artifact in (a for a in manifest["artifacts"] if a["kind"] == "sbom"):
        text = (release.folder / artifact["name"]).read_text()
        validate_sbom(text)
        document = json.loads(text)
        described = artifact["name"].removesuffix(".cdx.json")
        app = document["metadata"]["component"]
        assert app["hashes"] == [{"alg": "SHA-256", "content": sha256_file(release.folder / described)}]
        components = {f"{c['name']}@{c['version']}" for c in document["components"]}
        assert components == cargo_tree(release.crate / "Cargo.toml", artifact["target"], "tally")
        # Who depends on whom: an entry for the app and every crate; the app's are its direct dependencies.
        graph = {d["ref"]: set(d.get("dependsOn", ())) for d in document["dependencies"]}
        assert set(graph) == {app["bom-ref"]} | components
        direct = cargo_tree(release.crate / "Cargo.toml", artifact["target"], "tally", depth=1)
        assert graph[app["bom-ref"]] == direct and set().union(*graph.values()) == components
        for component in document["components"]:
            assert component["hashes"][0]["content"] == lock[(component["name"], component["version"])]
            assert component["licenses"] and component["purl"].startswith(f"pkg:cargo/{component['name']}@")
        features = {p["value"] for c in document["components"] if c["name"] == "rusqlite" for p in c["properties"]}
        assert {"bundled", "backup"} <= features


def entry(triple: str, features: tuple[str, ...] = ()) -> TargetEntry:
    return TargetEntry(triple, True, 0.0, features=features)


def test_the_sbom_follows_the_target_and_the_features() -> None:
    # A macOS-only dependency is in the macOS resolve alone, as `cargo tree` has it.
    corpus = REPO_ROOT / "tests" / "corpus"
    fw = corpus / "macos-framework" / "Cargo.toml"
    for triple in ("x86_64-apple-darwin", "x86_64-unknown-linux-gnu"):
        crates = {c.key for c in resolve(fw, "corpus-macos-fw", triple, entry(triple)).crates}
        assert crates == cargo_tree(fw, triple, "corpus-macos-fw")
        assert any(k.startswith("core-foundation@") for k in crates) == (triple == "x86_64-apple-darwin")
    # A feature turned on for the build is in the SBOM's root; a workspace neighbour's deps are not.
    ws = corpus / "workspace" / "Cargo.toml"
    loud = resolve(ws, "corpus-alpha", "x86_64-unknown-linux-gnu", entry("x", ("corpus-alpha/loud",)))
    plain = resolve(ws, "corpus-alpha", "x86_64-unknown-linux-gnu", entry("x"))
    assert "loud" in loud.root.features and "loud" not in plain.root.features
    # The real-deps corpus CLI: clap, serde and friends, exactly as cargo tree lists them.
    cli = corpus / "cli" / "Cargo.toml"
    crates = {c.key for c in resolve(cli, "corpus-cli", "x86_64-pc-windows-gnu", entry("x")).crates}
    assert crates == cargo_tree(cli, "x86_64-pc-windows-gnu", "corpus-cli") and len(crates) > 15


def test_the_sbom_query_asked_ahead_is_used_once_and_only_while_the_project_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build asks `cargo metadata` while cargo compiles; the SBOM takes that answer
    (seen here with cargo gone from PATH) unless Cargo.toml or Cargo.lock changed since."""
    from toolchain.release.channels import crates

    manifest = make_crate(tmp_path / "ahead", "ahead")
    subprocess.run(["cargo", "generate-lockfile", "--manifest-path", manifest], check=True, capture_output=True)
    monkeypatch.delenv("CARGO", raising=False)
    host = "x86_64-unknown-linux-gnu"

    def ask_ahead() -> None:
        crates.prefetch(manifest, manifest.with_name("Cargo.lock"), [host], (), False, False)
        # Only this crate's answers: a build that failed earlier in this process (another test's)
        # leaves its own unused, a failure among them.
        for argv, (_, future) in list(crates._ahead.items()):
            if str(manifest) in argv:
                future.result()

    path = os.environ["PATH"]
    ask_ahead()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve(manifest, "ahead", host, entry(host)).root.name == "ahead"
    with pytest.raises(ToolchainError, match="'cargo' is not installed"):
        resolve(manifest, "ahead", host, entry(host))  # used once
    monkeypatch.setenv("PATH", path)
    ask_ahead()
    manifest.write_text(manifest.read_text().replace('version = "0.3.1"', 'version = "0.3.2"'))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolchainError, match="'cargo' is not installed"):
        resolve(manifest, "ahead", host, entry(host))


def test_the_sbom_takes_the_graph_a_pre_cargo_check_asked_for_while_the_project_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre-cargo check (the SDK, rust-version or C-library check) asks `cargo metadata` for the
    target's graph; the SBOM reads that answer instead of asking again, and nothing is asked
    ahead for it, until Cargo.toml or Cargo.lock changes."""
    from toolchain.compile.cargo import load_project, read_lock, target_metadata
    from toolchain.config.settings import load_settings
    from toolchain.release.channels import crates

    manifest = make_crate(tmp_path / "asked", "asked")
    subprocess.run(["cargo", "generate-lockfile", "--manifest-path", manifest], check=True, capture_output=True)
    monkeypatch.delenv("CARGO", raising=False)
    host = "x86_64-unknown-linux-gnu"
    project = load_project(manifest)
    target_metadata(project, host, load_settings(manifest.parent))
    crates.prefetch(project.manifest_path, project.lockfile, [host], (), False, False)
    assert not [argv for argv in crates._ahead if str(project.manifest_path) in argv]
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for _ in range(2):  # the build's own answer, not used up
        assert resolve(project.manifest_path, "asked", host, entry(host)).root.name == "asked"
    # Cargo.lock read once while unchanged, again once it changes.
    assert read_lock(project.lockfile) is read_lock(project.lockfile)
    before = read_lock(project.lockfile)
    project.lockfile.write_text(project.lockfile.read_text() + "\n")
    assert read_lock(project.lockfile) is not before
    with pytest.raises(ToolchainError, match="'cargo' is not installed"):
        resolve(project.manifest_path, "asked", host, entry(host))
    monkeypatch.setenv("PATH", path)
    assert resolve(project.manifest_path, "asked", host, entry(host)).root.name == "asked"


def test_the_homebrew_formula_and_scoop_manifest_point_at_the_archives(release: Release) -> None:
    formula = (release.folder / "tally.rb").read_text()
    for triple in LINUX:
        name = f"tally-{triple}.tar.xz"
        assert f'url "{URL}/{name}"\n      sha256 "{sha256_file(release.folder / name)}"' in formula
    assert "class Tally < Formula" in formula and 'bin.install "tally"' in formula
    if shutil.which("ruby"):
        run("ruby", "-c", release.folder / "tally.rb")
    scoop = json.loads((release.folder / "tally.json").read_text())
    zip_name = f"tally-{WINDOWS}.zip"
    assert scoop["architecture"]["64bit"] == {
        "url": f"{URL}/{zip_name}",
        "hash": sha256_file(release.folder / zip_name),
        "extract_dir": f"tally-{WINDOWS}",
    }
    assert (scoop["version"], scoop["bin"], scoop["license"]) == ("0.1.0", ["tally.exe"], "MIT")


def test_packaging_again_writes_the_same_bytes(release: Release, tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(release.folder, again)
    made = [p.name for p in again.iterdir() if re.search(r"\.(deb|rpm|apk|msi|rb|cdx\.json)$|^tally\.json$", p.name)]
    assert len(made) == 19
    for name in made:
        (again / name).unlink()
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        package_release(again, release.key, URL, release.crate, formats=ALL)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    different = [n for n in made if sha256_file(again / n) != sha256_file(release.folder / n)]
    assert not different


def reseal(folder: Path, key: SecretKey, changed: str) -> None:
    """Re-list and re-sign a folder after `changed` was edited, as a forger with the key would."""
    provenance = folder / "provenance.intoto.json"
    statement = json.loads(provenance.read_text())
    for subject in statement["subject"]:
        if subject["name"] == changed:
            subject["digest"]["sha256"] = sha256_file(folder / changed)
    provenance.write_text(json.dumps(statement))
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for artifact in manifest["artifacts"]:
        if artifact["name"] in (changed, provenance.name):
            path = folder / artifact["name"]
            artifact["sha256"], artifact["size"] = sha256_file(path), path.stat().st_size
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    names = sorted(line.split()[1] for line in (folder / SUMS_NAME).read_text().splitlines())
    (folder / SUMS_NAME).write_text("".join(f"{sha256_file(folder / n)}  {n}\n" for n in names))
    for name in [*names, SUMS_NAME]:
        sign_file(folder / name, key, f"file:{name}")


def test_verify_refuses_an_sbom_of_another_artifact(release: Release, tmp_path: Path) -> None:
    forged = tmp_path / "forged"
    shutil.copytree(release.folder, forged)
    sbom = forged / "tally_0.1.0_amd64.deb.cdx.json"
    document = json.loads(sbom.read_text())
    document["metadata"]["component"]["hashes"][0]["content"] = sha256_file(forged / "tally_0.1.0_arm64.deb")
    sbom.write_text(json.dumps(document))
    reseal(forged, release.key, sbom.name)
    with pytest.raises(ReleaseCheckError, match=r"tally_0.1.0_amd64.deb.cdx.json: its SHA-256 of tally_0.1.0_amd64"):
        verify_release(forged, release.key.public_key().render())
    # A package whose SBOM was dropped (and unlisted everywhere) is named too.
    shutil.rmtree(forged)
    shutil.copytree(release.folder, forged)
    dropped = "tally-0.1.0-x64.msi.cdx.json"
    (forged / dropped).unlink()
    manifest = json.loads((forged / MANIFEST_NAME).read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["name"] != dropped]
    (forged / MANIFEST_NAME).write_text(json.dumps(manifest))
    statement = json.loads((forged / "provenance.intoto.json").read_text())
    statement["subject"] = [s for s in statement["subject"] if s["name"] != dropped]
    (forged / "provenance.intoto.json").write_text(json.dumps(statement))
    sums = (forged / SUMS_NAME).read_text().splitlines()
    (forged / SUMS_NAME).write_text("".join(f"{line}\n" for line in sums if not line.endswith(dropped)))
    reseal(forged, release.key, "provenance.intoto.json")
    with pytest.raises(ReleaseCheckError, match="tally-0.1.0-x64.msi has no SBOM beside it"):
        verify_release(forged, release.key.public_key().render())
    # Unforged, it verifies: the checks above are what refused the two.
    verify_release(release.folder, release.key.public_key().render())


@pytest.fixture(scope="module")
def bare_crate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A crate with none of the fields the packages need (no authors, description or license), built."""
    root = tmp_path_factory.mktemp("bare")
    manifest = make_crate(root / "bare", "bareapp")
    out = root / "dist"
    assert build(BuildOptions(manifest_path=manifest, profile="fast", out_dir=out)).ok
    return manifest, out


def test_missing_project_data_is_named_and_nothing_is_written(bare_crate: tuple[Path, Path]) -> None:
    manifest, out = bare_crate
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ProjectError, match=r"bareapp: .*Cargo.toml has no description, which the deb format needs"):
        package_release(out, None, URL, manifest.parent, formats=("sbom", "deb"))
    manifest.write_text(manifest.read_text().replace("edition", 'description = "d"\nlicense = "MIT"\nedition'))
    with pytest.raises(
        ProjectError, match=r"has no authors \(the maintainer\), which the deb, rpm formats need"
    ) as err:
        package_release(out, None, URL, manifest.parent, formats=("deb", "rpm"))
    assert "remove deb, rpm from [package] formats" in str(err.value)
    with pytest.raises(ConfigError, match=r"\[release\] download-url is empty, and the homebrew manifests"):
        package_release(out, None, "", manifest.parent, formats=("homebrew",))
    with pytest.raises(ProjectError, match="has no homepage or repository, which the scoop format needs"):
        package_release(out, None, URL, manifest.parent, formats=("scoop",))
    assert sorted(p.name for p in out.iterdir()) == before, "an error left files behind"
    # The SBOM needs nothing the crate lacks.
    report = package_release(out, None, "", manifest.parent, formats=("sbom",))
    assert [f.name for f in report.files if f.kind == "sbom"] == ["bareapp-x86_64-unknown-linux-gnu.tar.xz.cdx.json"]


def test_an_unknown_format_is_a_config_error_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "toolchain.toml"
    config.write_text('[package]\nformats = ["sbom", "dep"]\n')
    result = run_invoke("package", "--out-dir", str(tmp_path), env={"TOOLCHAIN_CONFIG": str(config)})
    assert result.returncode == 3
    assert "toolchain.toml:2: 'package.formats' has 'dep'; did you mean 'deb'?" in result.stderr
