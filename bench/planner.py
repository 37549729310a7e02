"""bench/planner: the language planner's choices on the twin's multi-step tasks, oracle executor.

    nice -n 10 python bench/planner.py [--episodes 50] [--llm-episodes 10] [--adapters DIR]
        [--twin-episodes 2] [--perception-scenes 4] [--out bench/RESULTS_planner.json]

Planners side by side on the same seeds (episode i of every planner uses seed ``--first-seed`` + i):

* ``scripted`` (the oracle's sub-goal sequence: the upper bound and the baseline of the ratios),
  ``random`` (uniform over candidates), ``fixed`` (the task's goal every step: today's behaviour),
  ``llm`` (TWOSOME scoring with the embedded SmolLM2, no adapters) and, with ``--adapters``,
  ``llm+lora`` (aligned by ``sim2real align``);
* in the **symbolic mode** (the task's goals and the oracle's effects, no physics) for
  ``--episodes`` episodes (``--llm-episodes`` for the LLM planners, whose CPU cost bounds them);
* in the **physical twin** (PyBullet, oracle executor) for ``--twin-episodes`` episodes each;
* **perception**: objects read from twin heightmaps (colour segmentation) against the ground
  truth, precision and recall over ``--perception-scenes`` scenes per task.

Printed: success rate, mean steps, time per planning decision (CPU process time and wall), and
the success ratio to ``scripted``. Results are also written as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TASKS = ("stack-block", "block-tower-corner", "put-block-in-bowl", "block-in-bowl-in-zone")


def symbolic_episodes(spec, planner, seeds) -> dict:
    """Success, steps and per-decision CPU/wall time of ``planner`` over ``seeds`` in symbolic mode."""
    from sim2real.planner.symbolic import SymbolicEnv

    env = SymbolicEnv(spec, step_cost=0.0)
    succ, steps, cpu, wall = [], [], [], []
    for seed in seeds:
        env.reset(seed)
        planner.reset(spec, env.instruction(), env.instance)
        for k in range(env.budget):
            c0, w0 = time.process_time(), time.perf_counter()
            d = planner.plan(None)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            _, term, trunc, info = env.step(d.goal)
            if term or trunc:
                break
        succ.append(bool(info["success"]))
        steps.append(k + 1)
    return {"episodes": len(seeds), "success_rate": float(np.mean(succ)), "mean_steps": float(np.mean(steps)),
            "decision_cpu_s": float(np.mean(cpu)), "decision_wall_s": float(np.mean(wall)), "decisions": len(cpu)}


def twin_episodes(twin, spec, planner, seeds) -> dict:
    from sim2real.planner.twin_run import run_planned_trial

    succ, steps, t = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        r = run_planned_trial(twin, spec, seed, "oracle", planner)
        succ.append(bool(r.success))
        steps.append(r.steps)
        t.append(time.perf_counter() - t0)
    return {"episodes": len(seeds), "success_rate": float(np.mean(succ)), "mean_steps": float(np.mean(steps)),
            "episode_wall_s": float(np.mean(t))}


def perception(twin, spec, seeds) -> dict:
    """Precision / recall of heightmap-read objects against the twin's ground truth."""
    from sim2real.heightmap import project_frames
    from sim2real.planner.scene import match_scenes, scene_from_heightmap, scene_from_truth

    tp = det = truth = 0
    for seed in seeds:
        inst = twin.start_trial(spec, seed)
        frames = twin.camera.read()
        obs = project_frames(frames if isinstance(frames, list) else [frames], twin.workspace)
        m = match_scenes(scene_from_heightmap(obs), scene_from_truth(inst))
        tp, det, truth = tp + m["true_positives"], det + m["detected"], truth + m["truth"]
    return {"scenes": len(seeds), "precision": tp / det if det else 1.0, "recall": tp / truth if truth else 1.0,
            "detected": det, "truth": truth}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--episodes", type=int, default=50, help="symbolic episodes per planner and task")
    ap.add_argument("--llm-episodes", type=int, default=10, help="symbolic episodes for the LLM planners")
    ap.add_argument("--twin-episodes", type=int, default=2, help="physical-twin episodes per planner and task")
    ap.add_argument("--twin-planners", default="scripted,random,llm", help="planners run in the physical twin")
    ap.add_argument("--perception-scenes", type=int, default=4, help="twin scenes per task for precision/recall")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="episode i uses seed first-seed + i (sim2real align trains environment k of a run with "
                         "--seed 0 on seeds k * 10007 + 1, + 2, ...: evaluate an aligned planner on seeds it never saw)")
    ap.add_argument("--adapters", help="aligned checkpoint directory (sim2real align) for the llm+lora column")
    ap.add_argument("--no-llm", action="store_true", help="skip the LLM planners")
    ap.add_argument("--skip-unaligned", action="store_true", help="with --adapters: only the aligned LLM column")
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS_planner.json"))
    args = ap.parse_args(argv)

    from sim2real.planner.planners import FixedPlanner, LLMPlanner, RandomPlanner, ScriptedPlanner
    from sim2real.tasks import load_all

    tasks = load_all()
    names = [t for t in args.tasks.split(",") if t]
    planners = {"scripted": ScriptedPlanner(), "random": RandomPlanner(seed=0), "fixed": FixedPlanner()}
    if not args.no_llm:
        from sim2real.planner.model import load_llm

        t0 = time.perf_counter()
        model, tok = load_llm()
        print(f"SmolLM2 loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        if not (args.adapters and args.skip_unaligned):
            planners["llm"] = LLMPlanner(model, tok)
        if args.adapters:  # its own copy of the model: peft injects the adapters into the model it wraps
            planners["llm+lora"] = LLMPlanner(*load_llm(), adapters=args.adapters)
    results = {"symbolic": {}, "twin": {}, "perception": {}, "args": vars(args)}
    for name in names:
        spec = tasks[name]
        results["symbolic"][name] = {}
        for pname, planner in planners.items():
            n = args.llm_episodes if pname.startswith("llm") else args.episodes
            if n <= 0:
                continue
            r = symbolic_episodes(spec, planner, list(range(args.first_seed, args.first_seed + n)))
            results["symbolic"][name][pname] = r
            print(f"symbolic {name:24s} {pname:9s} n={r['episodes']:3d} success {r['success_rate']:.2f} "
                  f"steps {r['mean_steps']:.2f} decision {1e3 * r['decision_cpu_s']:.1f} ms CPU "
                  f"({1e3 * r['decision_wall_s']:.1f} ms wall)", flush=True)
        if "scripted" not in results["symbolic"][name]:
            continue
        base = results["symbolic"][name]["scripted"]["success_rate"]
        ratios = {p: (r["success_rate"] / base if base else float("nan")) for p, r in results["symbolic"][name].items()}
        print(f"symbolic {name:24s} success / scripted: " + ", ".join(f"{p} {v:.2f}" for p, v in ratios.items()))
    if args.twin_episodes > 0 or args.perception_scenes > 0:
        from sim2real.twin import Twin

        twin = Twin.from_config()
        try:
            for name in names:
                spec = tasks[name]
                if args.perception_scenes > 0:
                    p = perception(twin, spec, list(range(args.perception_scenes)))
                    results["perception"][name] = p
                    print(f"perception {name:24s} precision {p['precision']:.2f} recall {p['recall']:.2f} "
                          f"({p['detected']} detected, {p['truth']} true objects)", flush=True)
                results["twin"][name] = {}
                for pname in [p for p in args.twin_planners.split(",") if p in planners]:
                    if args.twin_episodes <= 0:
                        break
                    r = twin_episodes(twin, spec, planners[pname], list(range(args.first_seed, args.first_seed + args.twin_episodes)))
                    results["twin"][name][pname] = r
                    print(f"twin     {name:24s} {pname:9s} n={r['episodes']} success {r['success_rate']:.2f} "
                          f"steps {r['mean_steps']:.2f} ({r['episode_wall_s']:.1f} s/episode)", flush=True)
        finally:
            twin.close()
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
