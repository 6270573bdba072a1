"""invoke smoke"""

from __future__ import annotations

from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import out_folder, target_list, task


@task(
    help={
        "target": "target triple(s) whose last build to run, comma-separated; default: this host's",
        "out-dir": "where the last build wrote its record; default: dist",
        "json": "print the results as JSON on stdout",
    },
    name="smoke",
)
def smoke_task(c: Context, target: str = "", out_dir: str = "", json: bool = False) -> None:
    """Run the last build's binaries here (native, qemu or wine): --version, then [smoke] checks."""
    from toolchain.config.settings import load_settings
    from toolchain.verify.inspect_report import built_binaries
    from toolchain.verify.smoke import require_ok, smoke_binary

    settings = load_settings()
    folder = out_folder(out_dir, settings)
    results = []
    for triple in target_list(target) or (settings.catalog.host_triple(),):
        chosen = settings.catalog.target(triple)
        with log.group(f"smoke {chosen.triple}"):
            for path, version in built_binaries(folder, chosen.triple):
                results.append((chosen.triple, smoke_binary(chosen, path, version, settings.smoke.checks)))
    if json:
        log.json(
            {
                "schema": "toolchain.smoke/v1",
                "results": [
                    {
                        "target": t,
                        "binary": str(r.binary),
                        "how": r.how,
                        "ran": r.ran,
                        "ok": r.ok,
                        "checks": [c.__dict__ for c in r.checks],
                    }
                    for t, r in results
                ],
            }
        )
    else:
        rows = [
            [t, r.binary.name, r.how, " ".join(c.args), "ok" if c.ok else "FAIL", c.exit_code]
            for t, r in results
            for c in r.checks
        ]
        rows += [[t, r.binary.name, "cannot run here", "-", "static checks only", "-"] for t, r in results if not r.ran]
        log.table("Smoke runs", ["target", "binary", "how", "command", "verdict", "exit"], rows)
    require_ok([r for _, r in results])


TASK = smoke_task
