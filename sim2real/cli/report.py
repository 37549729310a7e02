"""``sim2real report``: the evaluation table of one or more campaigns (one directory per model)."""
from __future__ import annotations

from sim2real.cli.paths import console as cli_console

import warnings


def register(sub) -> None:
    p = sub.add_parser("report", help="success-rate table, results.csv, paired tests, plots and gallery",
                       description="Report campaigns in the layout of GenSim's real-world table: task rows, one "
                                   "column per model (one campaign directory each, real robot or `sim2real run` "
                                   "twin), Wilson 95% intervals, exact paired tests between models, failure "
                                   "categories, PNG plots and a gallery page per trial.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="campaign directory (the --out of a campaign); one per model")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output directory (report.md, results.csv, *.png, gallery/)")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="column names, one per DIR (default: the recorded model name)")
    p.add_argument("--title", help="report title")
    p.add_argument("--no-gallery", action="store_true", help="skip the per-trial gallery pages (faster)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--allow-bad-lines", action="store_true",
                   help="report even if a trials.jsonl has bad lines (they are listed in the report, never counted)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.table import Table

    from sim2real.cli.paths import output_dir
    from sim2real.trials.report import write_report

    output_dir(args.out, "--out")
    console = cli_console(stderr=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = write_report(args.dirs, args.out, names=args.names, gallery=not args.no_gallery,
                              plots=not args.no_plots, allow_bad_lines=args.allow_bad_lines, title=args.title,
                              progress=True)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    table = Table(title="success rate (%)")
    table.add_column("task")
    for m in report.table.models:
        table.add_column(m, justify="right")
    for task in report.table.tasks:
        cells = []
        for m in report.table.models:
            c = report.table.cell(task, m)
            cells.append("–" if not c.trials else f"{100 * c.rate:.1f} ({c.successes}/{c.trials})")
        table.add_row(task, *cells)
    means = [report.table.mean(m) for m in report.table.models]
    table.add_row("[bold]mean[/]", *["–" if v is None else f"[bold]{100 * v:.1f}[/]" for v in means])
    cli_console().print(table)
    for cmp in report.comparisons:
        r = cmp.overall
        print(f"{cmp.a} vs {cmp.b}: {r.n_pairs} matched trials, {r.a_only} vs {r.b_only} discordant, "
              f"exact p = {r.p_value:.4f}")
    print(f"wrote {report.markdown}, {report.csv}" + "".join(f", {p}" for p in report.plots)
          + (f", {report.gallery}" if report.gallery else ""))
    return 0
