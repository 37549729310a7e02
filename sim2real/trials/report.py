"""The evaluation report: GenSim's real-world table, results.csv, paired tests, plots, gallery.

``sim2real report DIR [DIR ...] --out OUT`` reads one campaign directory per model (a real-robot
campaign or the twin's ``sim2real run --out``; both write the same trials.jsonl) and writes:

* ``OUT/report.md``: the success-rate table in the layout of GenSim's real-world table (task
  rows, model columns, a mean row), the same with Wilson 95% intervals, for every pair of models
  the exact paired test (McNemar) per task and overall, outcomes and failure categories per
  model, data problems found on load, and provenance;
* ``OUT/results.csv``: ``task,model,successes,trials,success_rate,ci_low,ci_high``, one row per
  task x model that has trials;
* ``OUT/success_rates.png`` (grouped bars with Wilson error bars, 0-100 %) and
  ``OUT/failures.png`` (failure categories per model);
* ``OUT/gallery/``: one page per trial (see :mod:`sim2real.trials.gallery`).

Success rate of a cell = trials labelled ``success`` / labelled trials. The mean row is the
unweighted mean of the task rates (GenSim's "average" over tasks).
"""
from __future__ import annotations

import csv
import itertools
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from sim2real.errors import InputError
from sim2real.trials.labels import FAILURE_CATEGORIES, OUTCOMES, category_title
from sim2real.trials.log import TrialLogError, record_label, scan_trials
from sim2real.trials.stats import PairedResult, paired_exact_test, wilson_interval

CSV_COLUMNS = ("task", "model", "successes", "trials", "success_rate", "ci_low", "ci_high")
CONFIDENCE = 0.95


@dataclass
class ModelCampaign:
    """The labelled trials of one model (one campaign directory).

    Attributes:
        name: column name in the report.
        dir: the campaign directory.
        records: validated trial records.
        issues: problems found on load (torn last line, and bad lines when allowed), by line.
        planned: trials in the campaign plan (from campaign.yaml) or None if unknown.
        task_order: the campaign's task order (campaign.yaml), else order of appearance.
    """

    name: str
    dir: Path
    records: list
    issues: list = field(default_factory=list)
    planned: Optional[int] = None
    task_order: list = field(default_factory=list)

    def checkpoints(self) -> list:
        """Distinct checkpoint sha256 values recorded in the provenance."""
        shas = {((r.get("provenance") or {}).get("checkpoint") or {}).get("sha256") for r in self.records}
        return sorted(s for s in shas if s)


def load_model_campaign(out_dir, name: Optional[str] = None, allow_bad_lines: bool = False) -> ModelCampaign:
    """Read one campaign directory.

    Raises:
        TrialLogError: trials.jsonl missing, or bad lines (listed by number) unless
            ``allow_bad_lines`` (they are then listed in the report instead).
    """
    import yaml

    out_dir = Path(out_dir)
    scan = scan_trials(out_dir)
    if scan.corrupt and not allow_bad_lines:
        listing = "; ".join(str(i) for i in scan.corrupt)
        raise TrialLogError(f"{scan.path}: {len(scan.corrupt)} bad line(s): {listing}. Fix them, or pass "
                            "--allow-bad-lines to report without them (they are listed in the report)")
    for issue in scan.issues:
        warnings.warn(f"{scan.path}: {issue}", UserWarning, stacklevel=2)
    planned, order = None, []
    campaign_file = out_dir / "campaign.yaml"
    if campaign_file.is_file():
        data = yaml.safe_load(campaign_file.read_text()) or {}
        order = [str(t) for t in data.get("tasks") or []]
        if order and isinstance(data.get("trials"), int):
            planned = len(order) * data["trials"]
    for r in scan.records:
        if r["task"] not in order:
            order.append(r["task"])
    if name is None:
        models = {r.get("model") or r.get("policy") for r in scan.records}
        name = models.pop() if len(models) == 1 else out_dir.name
    return ModelCampaign(name, out_dir, scan.records, scan.issues, planned, order)


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """Success statistics of one task x model.

    Attributes:
        successes, trials: counts of labelled trials.
        rate: successes / trials (None when there are no trials).
        ci: Wilson 95% interval (low, high).
        outcomes: Counter of label outcomes; categories: Counter of failure categories.
    """

    task: str
    model: str
    successes: int
    trials: int
    rate: Optional[float]
    ci: tuple
    outcomes: Counter
    categories: Counter


@dataclass
class ResultTable:
    """Cells of every task x model plus the per-model mean over tasks."""

    tasks: list
    models: list
    cells: dict

    def cell(self, task: str, model: str) -> Cell:
        return self.cells[(task, model)]

    def mean(self, model: str) -> Optional[float]:
        """Unweighted mean of the model's task success rates (tasks without trials are left out)."""
        rates = [self.cells[(t, model)].rate for t in self.tasks if self.cells[(t, model)].trials]
        return sum(rates) / len(rates) if rates else None

    def totals(self, model: str) -> tuple:
        """(successes, trials) over all tasks."""
        cells = [self.cells[(t, model)] for t in self.tasks]
        return sum(c.successes for c in cells), sum(c.trials for c in cells)

    def missing_tasks(self, model: str) -> list:
        return [t for t in self.tasks if not self.cells[(t, model)].trials]


def build_table(models: Sequence[ModelCampaign]) -> ResultTable:
    """Success counts, rates and Wilson intervals per task x model."""
    tasks: list = []
    for m in models:
        for t in m.task_order:
            if t not in tasks:
                tasks.append(t)
    cells = {}
    for m in models:
        for task in tasks:
            recs = [r for r in m.records if r["task"] == task]
            labels = [record_label(r) for r in recs]
            k, n = sum(1 for r in recs if r["success"]), len(recs)
            cells[(task, m.name)] = Cell(task, m.name, k, n, k / n if n else None,
                                         wilson_interval(k, n, CONFIDENCE), Counter(lab.outcome for lab in labels),
                                         Counter(lab.category for lab in labels if not lab.success and lab.category))
    return ResultTable(tasks, [m.name for m in models], cells)


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two models: per task and over all matched trials.

    Attributes:
        a, b: model names.
        per_task: {task: PairedResult}.
        overall: PairedResult over every matched (task, trial).
        seed_mismatches: matched trials whose recorded seeds differ (pairing is by trial index).
    """

    a: str
    b: str
    per_task: dict
    overall: PairedResult
    seed_mismatches: int


def compare(a: ModelCampaign, b: ModelCampaign, tasks: Sequence[str]) -> Comparison:
    """Exact McNemar tests of ``a`` vs ``b`` on trials matched by (task, trial index)."""
    ra = {(r["task"], r["trial"]): r for r in a.records}
    rb = {(r["task"], r["trial"]): r for r in b.records}
    matched = sorted(set(ra) & set(rb), key=lambda k: (list(tasks).index(k[0]) if k[0] in tasks else 1e9, k[1]))
    per_task = {}
    for task in tasks:
        keys = [k for k in matched if k[0] == task]
        per_task[task] = paired_exact_test((ra[k]["success"], rb[k]["success"]) for k in keys)
    overall = paired_exact_test((ra[k]["success"], rb[k]["success"]) for k in matched)
    mismatches = sum(1 for k in matched if ra[k].get("seed") != rb[k].get("seed"))
    return Comparison(a.name, b.name, per_task, overall, mismatches)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100.0 * x:.1f}"


def _p(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def markdown_table(table: ResultTable) -> str:
    """GenSim's layout: task rows, model columns, ``rate (k/n)`` cells, then the mean row."""
    lines = ["| Task | " + " | ".join(table.models) + " |", "|---|" + "---:|" * len(table.models)]
    for task in table.tasks:
        cells = []
        for m in table.models:
            c = table.cell(task, m)
            cells.append("–" if not c.trials else f"{_pct(c.rate)} ({c.successes}/{c.trials})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    means = []
    for m in table.models:
        mean = table.mean(m)
        means.append(f"**{_pct(mean)}**" + ("*" if table.missing_tasks(m) and mean is not None else ""))
    lines.append("| **Mean** | " + " | ".join(means) + " |")
    return "\n".join(lines)


def markdown_ci_table(table: ResultTable) -> str:
    """Success rate with its Wilson 95% interval, in percent."""
    lines = ["| Task | " + " | ".join(table.models) + " |", "|---|" + "---:|" * len(table.models)]
    for task in table.tasks:
        cells = []
        for m in table.models:
            c = table.cell(task, m)
            cells.append("–" if not c.trials else f"{_pct(c.rate)} [{_pct(c.ci[0])}, {_pct(c.ci[1])}]")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    pooled = []
    for m in table.models:
        k, n = table.totals(m)
        lo, hi = wilson_interval(k, n, CONFIDENCE)
        pooled.append("–" if not n else f"{_pct(k / n)} [{_pct(lo)}, {_pct(hi)}] ({k}/{n})")
    lines.append("| all trials (pooled) | " + " | ".join(pooled) + " |")
    return "\n".join(lines)


def markdown_comparison(cmp: Comparison, tasks: Sequence[str]) -> str:
    """Per-task and overall exact McNemar test of two models."""
    head = (f"| Task | matched | both ✓ | only {cmp.a} ✓ | only {cmp.b} ✓ | neither | "
            f"Δ ({cmp.a} − {cmp.b}) | p (exact) |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task in tasks:
        r = cmp.per_task[task]
        lines.append(_comparison_row(task, r))
    lines.append(_comparison_row("**all**", cmp.overall))
    return "\n".join(lines)


def _comparison_row(name: str, r: PairedResult) -> str:
    if not r.n_pairs:
        return f"| {name} | 0 | – | – | – | – | – | – |"
    return (f"| {name} | {r.n_pairs} | {r.both} | {r.a_only} | {r.b_only} | {r.neither} | "
            f"{100 * r.difference:+.1f} pp | {_p(r.p_value)} |")


def markdown_failures(table: ResultTable) -> str:
    """Outcomes and failure categories per model (counts over all tasks)."""
    lines = ["| | " + " | ".join(table.models) + " |", "|---|" + "---:|" * len(table.models)]
    for outcome in OUTCOMES:
        row = [sum(table.cell(t, m).outcomes.get(outcome, 0) for t in table.tasks) for m in table.models]
        lines.append(f"| outcome: {outcome} | " + " | ".join(str(v) for v in row) + " |")
    for cat in FAILURE_CATEGORIES:
        row = [sum(table.cell(t, m).categories.get(cat, 0) for t in table.tasks) for m in table.models]
        lines.append(f"| failure: {category_title(cat)} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def write_results_csv(table: ResultTable, path) -> Path:
    """results.csv with exactly CSV_COLUMNS; one row per task x model that has trials."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for task in table.tasks:
            for m in table.models:
                c = table.cell(task, m)
                if c.trials:
                    w.writerow([task, m, c.successes, c.trials, f"{c.rate:.4f}", f"{c.ci[0]:.4f}", f"{c.ci[1]:.4f}"])
    return path


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success_rates(table: ResultTable, path) -> Path:
    """Grouped bars (task groups, one bar per model) with Wilson 95% error bars; 0-100 %."""
    import numpy as np

    plt = _pyplot()
    groups = list(table.tasks) + ["mean"]
    n_models = len(table.models)
    width = 0.8 / max(n_models, 1)
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(1, n_models) ** 0.5 + 2), 4.8),
                           constrained_layout=True)
    colours = plt.get_cmap("tab10")
    for i, m in enumerate(table.models):
        rates, lo, hi = [], [], []
        for t in table.tasks:
            c = table.cell(t, m)
            r = c.rate if c.trials else np.nan
            rates.append(100 * r)
            lo.append(100 * (r - c.ci[0]) if c.trials else 0)
            hi.append(100 * (c.ci[1] - r) if c.trials else 0)
        offs = x - 0.4 + width * (i + 0.5)
        bars = ax.bar(offs[:-1], rates, width, label=m, color=colours(i), yerr=[lo, hi], capsize=3,
                      error_kw={"elinewidth": 1})
        mean = table.mean(m)
        mean_pct = 100 * mean if mean is not None else np.nan
        ax.bar(offs[-1:], [mean_pct], width, color=colours(i), hatch="//", edgecolor="white")
        for rect, r in zip(list(bars) + [None], rates + [mean_pct]):
            if not np.isfinite(r):
                continue
            xc = rect.get_x() + rect.get_width() / 2 if rect is not None else offs[-1]
            inside = r >= 12  # value at the bar's foot, clear of the error bar through its middle
            ax.text(xc, 1.5 if inside else r + 1, f"{r:.0f}", ha="center", va="bottom",
                    fontsize=7, color="white" if inside else "black", rotation=90 if n_models > 3 else 0)
    ax.axvline(len(table.tasks) - 0.5, color="0.6", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("success rate (%)")
    ax.set_xlabel("task")
    ax.set_title("Success rate per task\n(error bars: Wilson 95% interval; hatched: mean over tasks)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_failures(table: ResultTable, path) -> Path:
    """Stacked bars per model: failed / partial trials by category, in % of the model's trials
    (:func:`failures_figure`), saved as PNG."""
    plt = _pyplot()
    fig = failures_figure(table)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def failures_figure(table: ResultTable):
    """The failures figure; with no failed or partial trial it says so instead of empty axes."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(table.models) + 3.5), 4.8), constrained_layout=True)
    bottom = np.zeros(len(table.models))
    totals = np.array([max(table.totals(m)[1], 1) for m in table.models], dtype=float)
    colours = plt.get_cmap("tab10")
    for j, cat in enumerate(FAILURE_CATEGORIES):
        counts = np.array([sum(table.cell(t, m).categories.get(cat, 0) for t in table.tasks) for m in table.models],
                          dtype=float)
        share = 100 * counts / totals
        ax.bar(table.models, share, 0.6, bottom=bottom, label=category_title(cat), color=colours(j))
        for i, (c, s) in enumerate(zip(counts, share)):
            if c:
                ax.text(i, bottom[i] + s / 2, f"{int(c)}", ha="center", va="center", fontsize=8, color="white")
        bottom += share
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of the model's trials (%)")
    ax.set_xlabel("model")
    ax.set_title("Failures by category (numbers: trial counts)")
    ax.grid(axis="y", alpha=0.3)
    if not bottom.any():
        n = sum(table.totals(m)[1] for m in table.models)
        ax.text(0.5, 0.5, f"no failed or partial trials\n({n} trial(s), all successful)" if n else "no trials yet",
                transform=ax.transAxes, ha="center", va="center", fontsize=13)
    else:
        ax.legend(title="failure category", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


# ----------------------------------------------------------------------------------------------
# The whole report
# ----------------------------------------------------------------------------------------------

@dataclass
class Report:
    """What :func:`write_report` produced."""

    out: Path
    markdown: Path
    csv: Path
    plots: list
    gallery: Optional[Path]
    table: ResultTable
    comparisons: list


def _unique_names(models: list) -> None:
    """Give models that share a name a suffix: the shortest tail of their paths that tells them apart."""
    resolved = [m.dir.resolve() for m in models]
    dup = [str(d) for d in resolved if resolved.count(d) > 1]
    if dup:
        raise InputError(f"{dup[0]} is given twice; pass each campaign directory once (use --names to label them)")
    counts = Counter(m.name for m in models)
    for name in [n for n, c in counts.items() if c > 1]:
        group = [(m, r) for m, r in zip(models, resolved) if m.name == name]
        for depth in range(1, max(len(r.parts) for _, r in group) + 1):
            tails = ["/".join(r.parts[-depth:]) for _, r in group]
            if len(set(tails)) == len(tails):
                break
        for (m, _), tail in zip(group, tails):
            m.name = f"{name} ({tail})"


def write_report(dirs: Sequence, out, *, names: Optional[Sequence[str]] = None, gallery: bool = True,
                 plots: bool = True, allow_bad_lines: bool = False, title: Optional[str] = None,
                 progress: bool = False) -> Report:
    """Write report.md, results.csv, plots and (optionally) the gallery for one or more models.

    Args:
        dirs: campaign directories, one per model (report column order).
        out: output directory (created).
        names: column names, one per dir (default: the records' model name, else the dir name).
        gallery: write a page per trial (slower: one figure per step).
        plots: write the PNG plots.
        allow_bad_lines: report despite bad lines in trials.jsonl (they are listed).
        title: report title.
        progress: show a progress bar for the gallery.
    """
    if not dirs:
        raise InputError("give at least one campaign directory")
    if names is not None and len(names) != len(dirs):
        raise InputError(f"--names needs one name per directory ({len(dirs)}), got {len(names)}")
    models = [load_model_campaign(d, None if names is None else names[i], allow_bad_lines)
              for i, d in enumerate(dirs)]
    _unique_names(models)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = build_table(models)
    comparisons = [compare(a, b, table.tasks) for a, b in itertools.combinations(models, 2)]
    csv_path = write_results_csv(table, out / "results.csv")
    plot_paths = []
    if plots:
        plot_paths = [plot_success_rates(table, out / "success_rates.png"), plot_failures(table, out / "failures.png")]
    gallery_index = None
    if gallery:
        from sim2real.trials.gallery import write_gallery

        gallery_index = write_gallery(models, out / "gallery", progress=progress)
    md = render_report(models, table, comparisons, plot_paths, gallery_index, out, title)
    md_path = out / "report.md"
    md_path.write_text(md)
    return Report(out, md_path, csv_path, plot_paths, gallery_index, table, comparisons)


def render_report(models, table, comparisons, plot_paths, gallery_index, out: Path, title=None) -> str:
    """The markdown text of the report."""
    parts = [f"# {title or 'Evaluation report'}", ""]
    parts.append("Models (one campaign directory each):")
    parts.append("")
    for m in models:
        shas = m.checkpoints()
        ckpt = ", ".join(s[:12] for s in shas) if shas else "none recorded"
        planned = f" of {m.planned} planned" if m.planned is not None else ""
        parts.append(f"- **{m.name}**: `{m.dir}` — {len(m.records)} labelled trials{planned}; "
                     f"checkpoint sha256: {ckpt}")
        if len(shas) > 1:
            parts.append(f"  - WARNING: this directory mixes {len(shas)} checkpoints")
    parts += ["", "## Success rate (%)", "",
              "Cells: success rate in % (successes/trials). Mean: unweighted average over tasks"
              + (" (* = some tasks have no trials)." if any(table.missing_tasks(m) for m in table.models) else "."),
              "", markdown_table(table), "",
              "## Wilson 95% intervals", "", markdown_ci_table(table), ""]
    if comparisons:
        parts += ["## Paired comparison (exact McNemar test)", "",
                  "Trials are matched by (task, trial index); only discordant pairs count. "
                  "p: exact two-sided binomial test of the discordant pairs against 1/2.", ""]
        for cmp in comparisons:
            parts += [f"### {cmp.a} vs {cmp.b}", "", markdown_comparison(cmp, table.tasks), ""]
            if cmp.seed_mismatches:
                parts += [f"Note: {cmp.seed_mismatches} matched trial(s) ran with different seeds.", ""]
    parts += ["## Outcomes and failure categories", "", markdown_failures(table), ""]
    if plot_paths:
        parts += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plot_paths] + [""]
    if gallery_index is not None:
        parts += ["## Gallery", "", f"One page per trial: [{gallery_index.relative_to(out)}]"
                  f"({gallery_index.relative_to(out)})", ""]
    issues = [(m, i) for m in models for i in m.issues]
    parts += ["## Data problems", ""]
    if issues:
        parts += [f"- {m.name} (`{m.dir}/trials.jsonl`) {i}" for m, i in issues]
    else:
        parts.append("None: every line of every trials.jsonl is a valid, unique trial record.")
    incomplete = [m for m in models if m.planned is not None and len(m.records) < m.planned]
    for m in incomplete:
        parts.append(f"- {m.name}: campaign incomplete, {len(m.records)} of {m.planned} trials labelled")
    parts += ["", "## Provenance", ""]
    for m in models:
        prov = (m.records[0].get("provenance") if m.records else None) or {}
        parts.append(f"- **{m.name}**: version {prov.get('package_version', '?')}, git "
                     f"{prov.get('git_describe', '?')}, calibration "
                     f"{((prov.get('calibration') or {}).get('sha256') or 'none')[:12]}, operator "
                     f"{prov.get('operator', '?')}, retries {sum(1 for r in m.records if r.get('retry'))}")
    return "\n".join(parts) + "\n"


def write_campaign_report(out_dir, *, gallery: bool = False, plots: bool = True, title: Optional[str] = None) -> Path:
    """Report of one campaign directory into the directory itself (DIR/report.md, results.csv, plots).

    Used by ``sim2real run`` at the end of a twin campaign. Returns the report.md path.
    """
    out_dir = Path(out_dir)
    report = write_report([out_dir], out_dir, gallery=gallery, plots=plots,
                          title=title or f"Campaign report: {out_dir.name}")
    return report.markdown
