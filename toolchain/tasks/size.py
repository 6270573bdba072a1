"""invoke size"""

from __future__ import annotations

from invoke.context import Context

from toolchain.errors import SizeRegressionError
from toolchain.log import log
from toolchain.tasks.base import out_folder, target_list, task


def _change(current: int | None, base: int | None) -> str:
    if current is None or not base:
        return "new" if current is not None else "-"
    delta = current - base
    return f"{delta:+,} ({100.0 * delta / base:+.1f}%)"


@task(
    help={
        "target": "only these target triple(s), comma-separated; default: every target in the last build",
        "out-dir": "where the last build wrote its record; default: dist",
        "update-baseline": "write the current sizes (with --crates: code size per crate) into the baseline file",
        "report": "chart the size history (and the crates of --crates) into size-report.html in the output folder",
        "crates": "build once more without stripping and show which crates contribute most code (kept for --report)",
        "json": "print the result as JSON on stdout",
    },
    name="size",
)
def size_task(
    c: Context,
    target: str = "",
    out_dir: str = "",
    update_baseline: bool = False,
    report: bool = False,
    crates: bool = False,
    json: bool = False,
) -> None:
    """Binary and archive sizes against the baseline; fail on growth past the threshold."""
    from toolchain.config.settings import load_settings
    from toolchain.records.build_record import load_record
    from toolchain.verify.size import (
        GrowthLimit,
        baseline_crates,
        baseline_sizes,
        load_baseline,
        read_history,
        regressions,
        rows_from_record,
        write_baseline,
        write_baseline_crates,
    )

    settings = load_settings()
    folder = out_folder(out_dir, settings)
    triples = list(target_list(target))
    if crates:
        from toolchain.verify.bloat import attribute, save_attributions

        wanted: list[str | None] = list(triples) or [None]  # None: this host's target
        results = [a for triple in wanted for a in attribute(triple)]
        save_attributions(folder, results)
        if update_baseline:
            write_baseline_crates(
                settings.size_baseline, {(a.target, a.name): {c.crate: c.size for c in a.crates} for a in results}
            )
            log.info(f"wrote code size per crate into {settings.size_baseline}")
        if json:
            log.json(
                {
                    "schema": "toolchain.crate-sizes/v1",
                    "binaries": [a.to_dict() for a in results],
                }
            )
            return
        for attribution in results:
            total = sum(c.size for c in attribution.crates)
            log.table(
                f"Code size by crate: {attribution.binary.name} ({attribution.target}, unstripped build)",
                ["crate", "bytes", "share", "symbols"],
                [
                    [c.crate, f"{c.size:,}", f"{100.0 * c.size / total:.1f}%", c.symbols]
                    for c in attribution.crates[:15]
                ],
            )
        return
    if report:
        from toolchain.report.charts import require_matplotlib
        from toolchain.report.pages import write_size_report
        from toolchain.verify.bloat import load_attributions

        require_matplotlib()
        baseline = load_baseline(settings.size_baseline)
        page = write_size_report(
            folder,
            read_history(folder),
            baseline_sizes(baseline),
            GrowthLimit(settings.size.max_growth_percent, settings.size.max_growth_bytes),
            load_attributions(folder),
            baseline_crates(baseline),
        )
        log.info(f"size report: {page}")
        if json:
            log.json({"schema": "toolchain.size-report/v1", "path": str(page)})
        return
    record = load_record(folder)
    rows = rows_from_record(record, load_baseline(settings.size_baseline), triples)
    problems = regressions(rows, settings.size.max_growth_percent, settings.size.max_growth_bytes)
    if update_baseline:
        write_baseline(settings.size_baseline, rows)
        log.info(f"wrote {settings.size_baseline}")
        problems = []
    if json:
        log.json(
            {
                "schema": "toolchain.size/v1",
                "baseline": str(settings.size_baseline),
                "rows": [r.to_dict() for r in rows],
                "regressions": problems,
                "profile_settings": {t: list(e.profile_settings) for t, e in record.targets.items()},
            }
        )
    else:
        log.table(
            f"Sizes against {settings.size_baseline.name} (fail above {settings.size.max_growth_percent}% "
            f"and {settings.size.max_growth_bytes:,} bytes)",
            ["target", "binary", "size", "change", "archive", "change", "largest sections"],
            [
                [
                    r.target,
                    r.binary,
                    f"{r.size:,}",
                    _change(r.size, r.baseline_size),
                    f"{r.archive_size:,}" if r.archive_size else "-",
                    _change(r.archive_size, r.baseline_archive),
                    ", ".join(f"{n} {s:,}" for n, s in list(r.sections.items())[:3]),
                ]
                for r in rows
            ],
        )
        for triple, entry in sorted(record.targets.items()):
            if entry.profile_settings and (not triples or triple in triples):
                log.table(
                    f"Profile settings for {triple} ({entry.profile})",
                    ["setting", "value", "from"],
                    [[s["key"], s["value"], s["source"]] for s in entry.profile_settings],
                )
    if problems:
        raise SizeRegressionError(
            "size regression: " + "; ".join(problems),
            hint="shrink it, or accept the new size with `invoke size --update-baseline`",
        )


TASK = size_task
