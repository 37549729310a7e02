"""PPO over candidate sentences, as TWOSOME runs it (``ppo_llm_pomdp.py``, an edit of CleanRL's ``ppo.py``).

One function, :func:`train`, reads top to bottom like CleanRL: rollout from several environments,
GAE, then per update epoch a value phase (clipped value loss, Adam) followed by a policy phase
(clipped surrogate + entropy bonus, AdamW, gradient accumulation, early stop when the accumulated
approximate KL passes ``target_kl``); linear LR annealing. Every logged number is named after its
formula (``pg_loss``, ``v_loss``, ``entropy``, ``approx_kl``, ``clipfrac``, ``explained_variance``).

Departure: GAE separates termination (no bootstrap) from truncation at the step budget (bootstrap
from the critic's value of the final observation); CleanRL and TWOSOME treat both as termination.

An environment is any object with ``reset(seed) -> (prompt, candidates)``,
``observation() -> (prompt, candidates)`` and ``step(sentence) -> (reward, terminated, truncated,
info)`` (``info['success']`` is logged); :class:`sim2real.planner.symbolic.SymbolicEnv` is one.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from sim2real.errors import ConfigError

STATE_FILE = "training_state.json"
OPTIM_FILE = "optimizers.pt"


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters (TWOSOME's values unless noted).

    Attributes:
        total_steps: environment steps (all environments together) to train for.
        num_envs, num_steps: environments and steps per environment per rollout (TWOSOME 4 x 32).
        policy_lr, value_lr: actor (AdamW, eps 1e-5, no weight decay) and critic (Adam, eps 1e-5)
            learning rates. TWOSOME uses 1e-6 / 5e-5 on LLaMA-7B in fp16; a 135M model with LoRA
            needs a larger actor rate (ours).
        anneal_lr: linear decay of both rates to 0 over the updates.
        gamma, gae_lambda: discount and GAE lambda (VirtualHome's gamma 0.95).
        update_epochs: passes over each rollout (1).
        value_minibatches, policy_minibatches: minibatches per epoch of each phase (4, 32).
        grad_accum: policy minibatches accumulated per optimiser step (8).
        norm_adv, clip_coef, clip_vloss, ent_coef, vf_coef, max_grad_norm, target_kl: as CleanRL.
        normalization: candidate score normalisation ('word', TWOSOME's best).
        lora_r, lora_alpha, lora_dropout, lora_targets: the adapters.
        step_cost: reward subtracted per step by the environments built by ``sim2real align``.
        seed: torch / numpy seed; environment k's episode i uses seed ``seed * 100003 + k * 10007 + i``.
        save_every: checkpoint every this many updates (and at the end).
    """

    total_steps: int = 2048
    num_envs: int = 4
    num_steps: int = 32
    policy_lr: float = 1e-4
    value_lr: float = 5e-5
    anneal_lr: bool = True
    gamma: float = 0.95
    gae_lambda: float = 0.95
    update_epochs: int = 1
    value_minibatches: int = 4
    policy_minibatches: int = 32
    grad_accum: int = 8
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: Optional[float] = 0.02
    normalization: str = "word"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple = ("q_proj", "v_proj")
    step_cost: float = 0.01
    seed: int = 0
    save_every: int = 5

    def __post_init__(self):
        from sim2real.planner.scoring import NORMALIZATIONS

        positive = ("total_steps", "num_envs", "num_steps", "update_epochs", "value_minibatches",
                    "policy_minibatches", "grad_accum", "lora_r", "save_every")
        for name in positive:
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"PPO {name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("policy_lr", "value_lr", "clip_coef", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"PPO {name} must be > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"PPO {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef", "lora_dropout", "step_cost"):
            if getattr(self, name) < 0:
                raise ConfigError(f"PPO {name} must be >= 0, got {getattr(self, name)}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ConfigError(f"PPO target_kl must be > 0 or None, got {self.target_kl}")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"PPO normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        for name, parts in (("value_minibatches", self.value_minibatches), ("policy_minibatches", self.policy_minibatches)):
            if self.batch_size % parts:
                raise ConfigError(f"PPO {name} ({parts}) must divide the batch num_envs x num_steps ({self.batch_size})")
        if self.total_steps < self.batch_size:
            raise ConfigError(f"PPO total_steps ({self.total_steps}) must be at least one batch ({self.batch_size})")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @classmethod
    def from_dict(cls, d: dict) -> "PPOConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown PPO setting(s) {unknown}; known: {sorted(names)}")
        d = dict(d)
        if "lora_targets" in d:
            d["lora_targets"] = tuple(d["lora_targets"])
        return cls(**d)


def gae(rewards, values, terminated, truncated, final_values, next_value, gamma: float, lam: float):
    """Generalised advantage estimation with termination and truncation told apart.

    Args:
        rewards, values: (T, N) per step and environment; ``values[t]`` = V(s_t).
        terminated: (T, N) the episode ended at step t for good (no future value).
        truncated: (T, N) the episode was cut at step t by the budget (its future is V(s_{t+1})).
        final_values: (T, N) V of the observation that followed step t where truncated (else unused).
        next_value: (N,) V of the observation after the last step (used where step T-1 did not end).
        gamma, lam: discount and GAE lambda.

    Returns:
        (advantages, returns), each (T, N) float64; returns = advantages + values.
    """
    rewards, values = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
    terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
    final_values, next_value = np.asarray(final_values, np.float64), np.asarray(next_value, np.float64)
    T = len(rewards)
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1:])
    for t in reversed(range(T)):
        v_next = values[t + 1] if t < T - 1 else next_value
        v_next = np.where(truncated[t], final_values[t], v_next)
        v_next = np.where(terminated[t], 0.0, v_next)
        delta = rewards[t] + gamma * v_next - values[t]
        ended = terminated[t] | truncated[t]
        last = delta + gamma * lam * (~ended) * last
        adv[t] = last
    return adv, adv + values


def explained_variance(y_pred, y_true) -> float:
    var_y = float(np.var(y_true))
    return float("nan") if var_y == 0 else 1.0 - float(np.var(y_true - y_pred)) / var_y


# -- checkpoints -----------------------------------------------------------------------------------

def save_checkpoint(out: Path, agent, policy_opt, value_opt, state: dict) -> Path:
    """out/checkpoints/update_NNNNN/: adapters, critic, optimiser states (tensors only), state JSON;
    out/checkpoints/last names it."""
    import torch

    d = Path(out) / "checkpoints" / f"update_{state['update']:05d}"
    agent.save(d)
    torch.save({"policy": policy_opt.state_dict(), "value": value_opt.state_dict()}, d / OPTIM_FILE)
    (d / STATE_FILE).write_text(json.dumps(state, indent=1))
    (Path(out) / "checkpoints" / "last").write_text(d.name + "\n")
    return d


def last_checkpoint(out: Path) -> Optional[Path]:
    marker = Path(out) / "checkpoints" / "last"
    if not marker.is_file():
        return None
    d = marker.parent / marker.read_text().strip()
    return d if (d / STATE_FILE).is_file() else None


def load_checkpoint(d: Path, agent, policy_opt, value_opt) -> dict:
    import torch

    agent.load(d)
    opt = torch.load(d / OPTIM_FILE, map_location="cpu", weights_only=True)  # tensors and numbers only
    policy_opt.load_state_dict(opt["policy"])
    value_opt.load_state_dict(opt["value"])
    return json.loads((d / STATE_FILE).read_text())


# -- the loop --------------------------------------------------------------------------------------

def train(agent, envs: list, cfg: PPOConfig, out=None, resume: bool = True, progress: bool = True,
          on_update: Optional[Callable] = None) -> list:
    """Align ``agent`` with ``envs`` by PPO; returns the per-update metrics (also out/metrics.jsonl).

    Args:
        agent: an :class:`~sim2real.planner.agent.LLMAgent`.
        envs: ``cfg.num_envs`` environments (see the module doc).
        cfg: hyperparameters.
        out: directory for checkpoints, metrics.jsonl and learning_curve.png (None: nothing written).
        resume: continue from out/checkpoints/last when it exists.
        progress: show a progress bar with ETA.
        on_update: callable(metrics dict) after each update.
    """
    import torch
    from torch import nn
    from tqdm import tqdm

    if len(envs) != cfg.num_envs:
        raise ConfigError(f"PPO num_envs is {cfg.num_envs} but {len(envs)} environments were given")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    policy_opt = torch.optim.AdamW(agent.adapter_parameters(), lr=cfg.policy_lr, eps=1e-5, weight_decay=0)
    value_opt = torch.optim.Adam(agent.critic.parameters(), lr=cfg.value_lr, eps=1e-5)
    history, start_update, episodes = [], 1, [0] * cfg.num_envs
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        ckpt = last_checkpoint(out) if resume else None
        if ckpt is not None:
            state = load_checkpoint(ckpt, agent, policy_opt, value_opt)
            start_update, episodes = state["update"] + 1, state["episodes"]
            rng = np.random.default_rng([cfg.seed, state["update"]])
            torch.manual_seed(cfg.seed + state["update"])
            metrics_path = out / "metrics.jsonl"
            if metrics_path.is_file():
                history = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
                history = [h for h in history if h["update"] <= state["update"]]
                metrics_path.write_text("".join(json.dumps(h) + "\n" for h in history))

    def env_seed(k: int) -> int:
        episodes[k] += 1
        return cfg.seed * 100003 + k * 10007 + episodes[k]

    obs = [env.reset(env_seed(k)) for k, env in enumerate(envs)]
    T, N = cfg.num_steps, cfg.num_envs
    ep_return, ep_len = np.zeros(N), np.zeros(N, dtype=int)
    bar = tqdm(total=cfg.num_updates, initial=start_update - 1, desc="align (PPO updates)", disable=not progress,
               unit="update")
    for update in range(start_update, cfg.num_updates + 1):
        t0 = time.perf_counter()
        if cfg.anneal_lr:  # linear decay, as CleanRL
            frac = 1.0 - (update - 1.0) / cfg.num_updates
            policy_opt.param_groups[0]["lr"] = frac * cfg.policy_lr
            value_opt.param_groups[0]["lr"] = frac * cfg.value_lr

        # ---- rollout ------------------------------------------------------------------------
        prompts = [[None] * N for _ in range(T)]
        cands = [[None] * N for _ in range(T)]
        actions = np.zeros((T, N), dtype=np.int64)
        logprobs, values, rewards = np.zeros((T, N)), np.zeros((T, N)), np.zeros((T, N))
        terminated, truncated = np.zeros((T, N), bool), np.zeros((T, N), bool)
        final_values = np.zeros((T, N))
        finished = []  # (return, success, length) of episodes that ended in this rollout
        for t in range(T):
            p_t, c_t = [o[0] for o in obs], [o[1] for o in obs]
            with torch.no_grad():
                a, logp, _, v = agent.get_action_and_value(p_t, c_t)
            prompts[t], cands[t] = p_t, c_t
            actions[t], logprobs[t], values[t] = a.cpu().numpy(), logp.cpu().numpy(), v.cpu().numpy()
            for k, env in enumerate(envs):
                r, term, trunc, info = env.step(c_t[k][actions[t, k]])
                rewards[t, k], terminated[t, k], truncated[t, k] = r, term, trunc
                ep_return[k] += r
                ep_len[k] += 1
                if trunc and not term:
                    with torch.no_grad():
                        final_values[t, k] = float(agent.get_value([env.observation()[0]])[0])
                if term or trunc:
                    finished.append((ep_return[k], bool(info.get("success", False)), int(ep_len[k])))
                    ep_return[k], ep_len[k] = 0.0, 0
                    obs[k] = env.reset(env_seed(k))
                else:
                    obs[k] = env.observation()
        with torch.no_grad():
            next_value = agent.get_value([o[0] for o in obs]).cpu().numpy()
        advantages, returns = gae(rewards, values, terminated, truncated, final_values, next_value,
                                  cfg.gamma, cfg.gae_lambda)

        # ---- flatten the batch ----------------------------------------------------------------
        b_prompts = [prompts[t][k] for t in range(T) for k in range(N)]
        b_cands = [cands[t][k] for t in range(T) for k in range(N)]
        b_actions = torch.as_tensor(actions.reshape(-1))
        b_logprobs = torch.as_tensor(logprobs.reshape(-1), dtype=torch.float32)
        b_adv = torch.as_tensor(advantages.reshape(-1), dtype=torch.float32)
        b_returns = torch.as_tensor(returns.reshape(-1), dtype=torch.float32)
        b_values = torch.as_tensor(values.reshape(-1), dtype=torch.float32)
        device = next(agent.critic.parameters()).device
        b_actions, b_logprobs, b_adv, b_returns, b_values = (x.to(device) for x in
                                                             (b_actions, b_logprobs, b_adv, b_returns, b_values))

        # ---- update: value phase, then policy phase (TWOSOME) ----------------------------------
        b_inds = np.arange(cfg.batch_size)
        v_mb, p_mb = cfg.batch_size // cfg.value_minibatches, cfg.batch_size // cfg.policy_minibatches
        clipfracs, first_ratio, kl_stop = [], None, False
        v_loss = pg_loss = entropy_loss = old_approx_kl = approx_kl = torch.tensor(0.0)
        optimizer_steps, accumulated, total_approx_kl = 0, 0, 0.0
        for _epoch in range(cfg.update_epochs):
            if kl_stop:
                break
            rng.shuffle(b_inds)
            for start in range(0, cfg.batch_size, v_mb):
                mb = b_inds[start:start + v_mb]
                newvalue = agent.get_value([b_prompts[i] for i in mb]).view(-1)
                if cfg.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb]) ** 2
                    v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -cfg.clip_coef, cfg.clip_coef)
                    v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                value_opt.zero_grad()
                (v_loss * cfg.vf_coef).backward()
                nn.utils.clip_grad_norm_(agent.critic.parameters(), cfg.max_grad_norm)
                value_opt.step()

            policy_opt.zero_grad()
            for start in range(0, cfg.batch_size, p_mb):
                mb = b_inds[start:start + p_mb]
                if accumulated == 0:
                    total_approx_kl = 0.0
                _, newlogprob, entropy, _ = agent.get_action_and_value(
                    [b_prompts[i] for i in mb], [b_cands[i] for i in mb], b_actions[mb], with_value=False)
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    if first_ratio is None:
                        first_ratio = ratio.detach().cpu().numpy().copy()
                    old_approx_kl = (-logratio).mean()  # http://joschu.net/blog/kl-approx.html
                    approx_kl = ((ratio - 1) - logratio).mean()
                    total_approx_kl += float(approx_kl) / cfg.grad_accum
                    clipfracs.append(float(((ratio - 1.0).abs() > cfg.clip_coef).float().mean()))
                mb_adv = b_adv[mb]
                if cfg.norm_adv and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss1 = -mb_adv * ratio
                pg_loss2 = -mb_adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                entropy_loss = entropy.mean()
                loss = (pg_loss - cfg.ent_coef * entropy_loss) / cfg.grad_accum
                loss.backward()
                accumulated += 1
                if accumulated == cfg.grad_accum:
                    accumulated = 0
                    if cfg.target_kl is not None and total_approx_kl > cfg.target_kl:
                        policy_opt.zero_grad()
                        kl_stop = True
                        break
                    nn.utils.clip_grad_norm_(agent.adapter_parameters(), cfg.max_grad_norm)
                    policy_opt.step()
                    policy_opt.zero_grad()
                    optimizer_steps += 1

        # ---- log ------------------------------------------------------------------------------
        metrics = {
            "update": update, "env_steps": update * cfg.batch_size,
            "policy_lr": policy_opt.param_groups[0]["lr"], "value_lr": value_opt.param_groups[0]["lr"],
            "v_loss": float(v_loss.detach()), "pg_loss": float(pg_loss.detach()), "entropy": float(entropy_loss.detach()),
            "old_approx_kl": float(old_approx_kl), "approx_kl": float(approx_kl),
            "total_approx_kl": float(total_approx_kl), "kl_stop": kl_stop,
            "clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
            "explained_variance": explained_variance(values.reshape(-1), returns.reshape(-1)),
            "policy_optimizer_steps": optimizer_steps,
            "first_ratio_max_abs_dev": float(np.abs(first_ratio - 1).max()) if first_ratio is not None else None,
            "episodes": len(finished),
            "episodic_return": float(np.mean([f[0] for f in finished])) if finished else None,
            "success_rate": float(np.mean([f[1] for f in finished])) if finished else None,
            "episodic_length": float(np.mean([f[2] for f in finished])) if finished else None,
            "seconds": time.perf_counter() - t0,
        }
        history.append(metrics)
        if out is not None:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            if update % cfg.save_every == 0 or update == cfg.num_updates:
                save_checkpoint(out, agent, policy_opt, value_opt,
                                {"update": update, "episodes": episodes, "config": asdict(cfg)})
        if on_update is not None:
            on_update(metrics)
        bar.set_postfix(success=metrics["success_rate"], ret=metrics["episodic_return"])
        bar.update(1)
    bar.close()
    if out is not None and history:
        plot_learning_curve(history, out / "learning_curve.png")
    return history


def plot_learning_curve(history: list, path) -> Path:
    """Success rate and mean episodic return per update against environment steps (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["env_steps"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for a, key, label in ((ax[0], "success_rate", "success rate of finished episodes"),
                          (ax[1], "episodic_return", "mean episodic return")):
        pts = [(s, h[key]) for s, h in zip(steps, history) if h[key] is not None]
        if pts:
            a.plot(*zip(*pts), marker=".")
        a.set_xlabel("environment steps")
        a.set_title(label, fontsize=9)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
