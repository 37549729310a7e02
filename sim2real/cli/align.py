"""``sim2real align``: align the language planner with a task by PPO + LoRA (TWOSOME) in the twin.

    sim2real align --task stack-block --out runs/align-stack --total-steps 2048
    sim2real align --task block-tower-corner --llm models/SmolLM2-360M --device cuda --out runs/tower
    sim2real run --task stack-block --policy oracle --planner llm:runs/align-stack/checkpoints/update_00016 ...

Training runs in the task's fast symbolic mode (its goals and the oracle's effects, no physics;
docs/planner.md); evaluate the result in the physical twin with ``sim2real run --planner llm:DIR``.
Re-running the same command with the same --out resumes from the last checkpoint.
"""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from sim2real.planner.ppo import PPOConfig

    d = PPOConfig()
    p = sub.add_parser("align", help="align the language planner with a task by PPO + LoRA (symbolic twin)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="task name or alias (a comma list trains on several)")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoints, metrics.jsonl, learning_curve.png")
    p.add_argument("--llm", metavar="PATH", help="causal LM directory or .gguf (default: embedded SmolLM2-135M)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--total-steps", type=int, default=d.total_steps, help="environment steps in all")
    p.add_argument("--num-envs", type=int, default=d.num_envs, help="task instances rolled out in parallel")
    p.add_argument("--num-steps", type=int, default=d.num_steps, help="steps per instance per update")
    p.add_argument("--policy-lr", type=float, default=d.policy_lr, help="actor (LoRA) learning rate")
    p.add_argument("--value-lr", type=float, default=d.value_lr, help="critic learning rate")
    p.add_argument("--policy-minibatches", type=int, default=d.policy_minibatches)
    p.add_argument("--value-minibatches", type=int, default=d.value_minibatches)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum, help="policy minibatches per optimiser step")
    p.add_argument("--normalization", choices=["sum", "token", "word"], default=d.normalization)
    p.add_argument("--step-cost", type=float, default=d.step_cost, help="reward subtracted per step")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every N updates")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args):
    from sim2real.planner.ppo import PPOConfig

    return PPOConfig(total_steps=args.total_steps, num_envs=args.num_envs, num_steps=args.num_steps,
                     policy_lr=args.policy_lr, value_lr=args.value_lr, policy_minibatches=args.policy_minibatches,
                     value_minibatches=args.value_minibatches, grad_accum=args.grad_accum,
                     normalization=args.normalization, step_cost=args.step_cost, seed=args.seed,
                     save_every=args.save_every)


def run(args) -> int:
    from rich.console import Console

    from sim2real.errors import InputError
    from sim2real.planner.symbolic import SymbolicEnv
    from sim2real.tasks import load_all, resolve_many

    console = Console(stderr=True)
    cfg = config_from_args(args)  # validated before anything slow
    specs = resolve_many(args.task, load_all())
    envs = [SymbolicEnv(specs[k % len(specs)], step_cost=cfg.step_cost) for k in range(cfg.num_envs)]
    for env in envs:  # every task must offer the planner something to choose
        _, cands = env.reset(0)
        if len(cands) < 2:
            raise InputError(f"task {env.spec.name}: its language templates give no sub-goal sentence to choose "
                             "(only 'done'); align needs a task whose templates name two objects")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device here; use --device cpu")
    from sim2real.planner.agent import LLMAgent, LoraSettings
    from sim2real.planner.model import load_llm, model_name
    from sim2real.planner.ppo import train

    model, tokenizer = load_llm(args.llm, args.device)
    agent = LLMAgent(model, tokenizer, normalization=cfg.normalization,
                     lora=LoraSettings(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets))
    console.print(f"align: {model_name(args.llm)} + LoRA r{cfg.lora_r}; tasks {[s.name for s in specs]} (symbolic); "
                  f"{cfg.num_updates} update(s) of {cfg.batch_size} steps -> {args.out}")
    history = train(agent, envs, cfg, out=Path(args.out), resume=not args.fresh, progress=not args.no_progress)
    if history:
        last = history[-1]
        console.print(f"update {last['update']}: success rate {last['success_rate']}, return {last['episodic_return']}; "
                      f"checkpoints in {args.out}/checkpoints, curve {args.out}/learning_curve.png")
    return 0
