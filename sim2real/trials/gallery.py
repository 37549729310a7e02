"""A gallery page per trial: heightmap, pick / place affordances, chosen vs executed poses.

Layout under ``OUT/gallery/``::

    index.md                              every trial of every model, with outcome and link
    <model>/<task>/<trial:04d>.md         one page per trial: a table of the steps + a figure per step
    <model>/<task>/<trial:04d>_sNNN.png   colour heightmap with chosen (o) and executed (x) pick/place,
                                          height, pick affordance (softmax of the pick logits) and place
                                          affordance (softmax of the place logits, max over rotations)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from sim2real.trials.labels import category_title
from sim2real.trials.log import load_steps, record_label, task_slug


def _softmax_map(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = np.where(np.isfinite(x), x, -np.inf)
    x = np.exp(x - x.max())
    return x / x.sum()


def _executed_pixel(executed: Optional[dict], key: str, workspace) -> Optional[tuple]:
    pose = (executed or {}).get(key)
    if not isinstance(pose, dict) or "xyz" not in pose:
        return None
    return workspace.xyz_to_pix(pose["xyz"])


def _pose_text(pose: Optional[dict]) -> str:
    if not pose:
        return "–"
    xyz = ", ".join(f"{v:.3f}" for v in pose["xyz"])
    theta = pose.get("theta")
    pix = pose.get("pixel")
    parts = [f"({xyz}) m"]
    if theta is not None:
        parts.append(f"θ {np.degrees(theta):.0f}°")
    if pix is not None:
        parts.append(f"px {tuple(pix)}")
    return ", ".join(parts)


def _distance_mm(a: Optional[dict], b: Optional[dict]) -> str:
    if not a or not b or "xyz" not in a or "xyz" not in b:
        return "–"
    # horizontal only: the executed z differs from the chosen one by design (grasp depth, held height)
    return f"{1000 * float(np.linalg.norm(np.subtract(a['xyz'][:2], b['xyz'][:2]))):.1f}"


SCALE = 2
"""Each heightmap cell is drawn as SCALE x SCALE image pixels."""

MARKERS = {"chosen pick": (0, 200, 255), "executed pick": (255, 0, 255),
           "chosen place": (0, 220, 0), "executed place": (255, 230, 0)}


def _colormap(name: str, values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 through a matplotlib colormap."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def _overlay(color: np.ndarray, logits) -> np.ndarray:
    gray = np.repeat(color.mean(axis=2, keepdims=True), 3, axis=2)
    if logits is None:
        return gray.astype(np.uint8)
    prob = _softmax_map(logits)
    heat = _colormap("hot", prob / max(prob.max(), 1e-12)).astype(np.float64)
    alpha = 0.65 * np.clip(prob / max(prob.max(), 1e-12), 0.15, 1.0)[..., None]
    return (gray * (1 - alpha) + heat * alpha).astype(np.uint8)


def _draw_marker(draw, pixel, kind: str, colour, scale: int) -> None:
    r, c = pixel
    y, x = (r + 0.5) * scale, (c + 0.5) * scale
    for fill, width in (((0, 0, 0), 5), (colour, 3)):  # black outline: visible on any background
        if kind == "o":
            draw.ellipse([x - 9, y - 9, x + 9, y + 9], outline=fill, width=width)
        else:
            draw.line([x - 7, y - 7, x + 7, y + 7], fill=fill, width=width)
            draw.line([x - 7, y + 7, x + 7, y - 7], fill=fill, width=width)


def wrap_to_width(text: str, font, width_px: float) -> list:
    """``text`` broken at spaces into lines no wider than ``width_px`` in ``font`` (a word longer
    than the width gets a line of its own)."""
    lines: list = []
    for word in text.split():
        if lines and font.getlength(lines[-1] + " " + word) <= width_px:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _plot_step(step, path: Path, title: str) -> Path:
    """Save the 4-panel image of one recorded step (PIL: ~50x faster than a matplotlib figure).

    Panels: heightmap colour, height (viridis, 0..max m), pick affordance, place affordance
    (max over rotations); chosen poses as circles, executed poses as crosses; the image's
    vertical axis is the heightmap row (y), horizontal the column (x), as the policy sees it.
    """
    from PIL import Image, ImageDraw, ImageFont

    from sim2real.workspace import Workspace

    a, meta = step.arrays, step.meta
    ws = Workspace.from_dict(meta["observation"]["workspace"])
    color, height = a["hm_color"], a["hm_height"].astype(np.float32)
    action = meta.get("action") or {}
    chosen = {k: tuple(action[k]["pixel"]) for k in ("pick", "place") if k in action}
    done = {k: _executed_pixel(meta.get("executed"), k, ws) for k in ("pick", "place")}
    hmax = max(float(height.max()), 1e-3)
    panels = [("heightmap colour", color, ("pick", "place")),
              (f"height 0-{100 * hmax:.1f} cm", _colormap("viridis", height / hmax), ("pick", "place")),
              ("pick affordance" + ("" if a.get("pick_logits") is not None else " (none)"),
               _overlay(color, a.get("pick_logits")), ("pick",)),
              ("place affordance" + ("" if a.get("place_logits_max") is not None else " (none)"),
               _overlay(color, a.get("place_logits_max")), ("place",))]
    rows, cols = color.shape[:2]
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=13)
    pw, ph, gap = cols * SCALE, rows * SCALE, 16
    width = 4 * pw + 5 * gap
    lines = wrap_to_width(title, font, width - 2 * gap)
    top, bottom = 34 + 18 * len(lines), 40
    canvas = Image.new("RGB", (width, ph + top + bottom), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):  # long goals wrap instead of running off the image
        draw.text((gap, 6 + 18 * k), line, fill=(0, 0, 0), font=font)
    for i, (name, image, keys) in enumerate(panels):
        x0 = gap + i * (pw + gap)
        panel = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((pw, ph), Image.NEAREST)
        pdraw = ImageDraw.Draw(panel)
        for key in keys:
            if key in chosen:
                _draw_marker(pdraw, chosen[key], "o", MARKERS[f"chosen {key}"], SCALE)
            if done.get(key) is not None:
                _draw_marker(pdraw, done[key], "x", MARKERS[f"executed {key}"], SCALE)
        canvas.paste(panel, (x0, top))
        draw.text((x0, top - 20), name, fill=(0, 0, 0), font=small)
    x = gap
    for name, colour in MARKERS.items():
        draw.rectangle([x, top + ph + 14, x + 12, top + ph + 26], fill=colour)
        draw.text((x + 16, top + ph + 12), name + (" (o)" if name.startswith("chosen") else " (x)"),
                  fill=(0, 0, 0), font=small)
        x += 150
    draw.text((x, top + ph + 12), "rows = y, columns = x", fill=(90, 90, 90), font=small)
    canvas.save(path, compress_level=1)  # speed over size: a gallery has hundreds of these
    return path


def trial_page(model: str, rec: dict, trial_dir: Path, page: Path) -> Path:
    """Write the markdown page (and step figures) of one trial."""
    steps = load_steps(trial_dir)
    label = record_label(rec)
    stem = page.stem
    page.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {model}: {rec['task']} trial {rec['trial'] + 1}", "",
             f"- outcome: **{label.outcome}**" + (f" ({category_title(label.category)})" if label.category else "")
             + (f" — {label.note}" if label.note else ""),
             f"- end reason: {rec['reason']} after {rec['steps']} step(s); seed {rec['seed']}"
             + ("; **retry** of an interrupted attempt" if rec.get("retry") else ""),
             f"- goal: {rec.get('goal') or '–'}", f"- artefacts: `{trial_dir}`", "",
             "| step | chosen pick | executed pick | Δxy mm | chosen place | executed place | Δxy mm | safety "
             "| error |",
             "|---:|---|---|---:|---|---|---:|---|---|"]
    figures = []
    for s in steps:
        m = s.meta
        action, executed = m.get("action") or {}, m.get("executed") or {}
        safety = m.get("safety") or {}
        verdict = "–" if not safety else (
            "ok" if safety.get("ok") else "STOP: " + "; ".join(safety.get("reasons", [])))
        lines.append(f"| {s.index} | {_pose_text(action.get('pick'))} | {_pose_text(executed.get('pick'))} | "
                     f"{_distance_mm(action.get('pick'), executed.get('pick'))} | {_pose_text(action.get('place'))} | "
                     f"{_pose_text(executed.get('place'))} | "
                     f"{_distance_mm(action.get('place'), executed.get('place'))} | "
                     f"{verdict} | {m.get('error') or ''} |")
        if "hm_color" in s.arrays and "observation" in m:
            png = page.with_name(f"{stem}_s{s.index:03d}.png")
            _plot_step(s, png, f"{model} · {rec['task']} #{rec['trial'] + 1} · step {s.index}: {m.get('goal') or ''}")
            figures.append(png)
    lines.append("")
    for png in figures:
        lines += [f"![{png.stem}]({png.name})", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines) + "\n")
    return page


def write_gallery(models: Sequence, out: Path, progress: bool = False) -> Path:
    """Pages for every trial of every model + index.md; returns the index path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, rec) for m in models for rec in m.records if rec.get("artefacts")]
    index = ["# Trial gallery", "", "| model | task | trial | outcome | category | steps | reason | page |",
             "|---|---|---:|---|---|---:|---|---|"]
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="gallery", unit="trial")
    for m, rec in it:
        trial_dir = m.dir / rec["artefacts"]
        page = out / task_slug(m.name) / task_slug(rec["task"]) / f"{rec['trial']:04d}.md"
        label = record_label(rec)
        if trial_dir.is_dir():
            trial_page(m.name, rec, trial_dir, page)
            link = f"[page]({page.relative_to(out)})"
        else:
            link = "artefacts missing"
        index.append(f"| {m.name} | {rec['task']} | {rec['trial'] + 1} | {label.outcome} | "
                     f"{category_title(label.category)} | {rec['steps']} | {rec['reason']} | {link} |")
    path = out / "index.md"
    path.write_text("\n".join(index) + "\n")
    return path
