"""TWOSOME's agent: LoRA adapters on a frozen causal LM (the actor) and an MLP critic on its hidden state.

Actor (``policy_pomdp.py``): ``peft`` LoRA, r 8, alpha 16, dropout 0, on q_proj and v_proj; the
policy over a step's candidates is ``softmax`` of their normalised scores
(:func:`sim2real.planner.scoring.candidate_logits_shared_prompt`: each prompt run once, its cache
shared by the candidates). Critic (``critic.py``): a bias-free MLP
h -> 1024 -> 512 -> 1 with ReLU, on the last-layer hidden state of the prompt's last real token,
read from the frozen model with the adapters disabled and no gradient.

Checkpoints are a directory: the adapters as ``peft`` writes them (safetensors) and
``critic.safetensors``; nothing is unpickled when loading.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sim2real.compat import ensure_torchvision
from sim2real.errors import CheckpointError, InputError
from sim2real.planner.scoring import NORMALIZATIONS, candidate_logits_shared_prompt, prompt_hidden

CRITIC_FILE = "critic.safetensors"

ensure_torchvision()  # peft imports transformers, which imports torchvision


@dataclass(frozen=True)
class LoraSettings:
    """TWOSOME's LoRA: rank, alpha, dropout and target module names."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple = ("q_proj", "v_proj")


class Critic(nn.Module):
    """Bias-free MLP h -> 1024 -> 512 -> 1 with ReLU (TWOSOME's ``v_head_mlp1..3``)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.v_head_mlp1 = nn.Linear(hidden, 1024, bias=False)
        self.v_head_mlp2 = nn.Linear(1024, 512, bias=False)
        self.v_head_mlp3 = nn.Linear(512, 1, bias=False)

    def forward(self, h):
        relu = torch.relu
        return self.v_head_mlp3(relu(self.v_head_mlp2(relu(self.v_head_mlp1(h))))).squeeze(-1)


class LLMAgent(nn.Module):
    """Actor (frozen LM + LoRA) and critic over candidate sentences.

    Args:
        model: a causal LM (frozen here: its own parameters never require grad). peft injects the
            adapters into this very object: do not score with it elsewhere as the base model.
        tokenizer: its tokenizer.
        normalization: 'sum' | 'token' | 'word'.
        lora: adapter settings for a new actor.
        adapters: a checkpoint directory to load (adapters + critic) instead of new ones.
    """

    def __init__(self, model, tokenizer, normalization: str = "word", lora: LoraSettings = LoraSettings(),
                 adapters=None):
        from peft import LoraConfig, get_peft_model

        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise InputError(f"normalization {normalization!r} is unknown; use one of {NORMALIZATIONS}")
        model.requires_grad_(False)
        self.tokenizer, self.normalization = tokenizer, normalization
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
        self.actor = get_peft_model(model, config)
        self.critic = Critic(model.config.hidden_size).to(next(model.parameters()).device)
        if adapters is not None:
            self.load(adapters)
        self.eval()  # dropout off: the first PPO ratio is exactly the rollout's

    # -- policy and value -------------------------------------------------------------------
    def logits(self, prompts: list, candidates: list):
        """(P, K) normalised candidate scores (differentiable through the adapters)."""
        return candidate_logits_shared_prompt(self.actor, self.tokenizer, prompts, candidates, self.normalization)

    def get_value(self, prompts: list):
        """(P,) critic values, on the frozen model's hidden state (adapters disabled)."""
        with self.actor.disable_adapter():
            h = prompt_hidden(self.actor, self.tokenizer, prompts)
        return self.critic(h)

    def get_action_and_value(self, prompts: list, candidates: list, action=None, with_value: bool = True):
        """(action (P,), log-prob (P,), entropy (P,), value (P,) or None), as CleanRL's agent."""
        from torch.distributions.categorical import Categorical

        dist = Categorical(logits=self.logits(prompts, candidates))
        if action is None:
            action = dist.sample()
        value = self.get_value(prompts) if with_value else None
        return action, dist.log_prob(action), dist.entropy(), value

    def probabilities(self, prompt: str, candidates: list):
        """(K,) numpy probabilities of one prompt's candidates (no gradient)."""
        with torch.no_grad():
            return torch.softmax(self.logits([prompt], [candidates])[0], -1).double().cpu().numpy()

    # -- parameters and checkpoints -----------------------------------------------------------
    def adapter_parameters(self) -> list:
        return [p for n, p in self.actor.named_parameters() if p.requires_grad and "lora_" in n]

    def save(self, directory) -> Path:
        """Write the adapters (peft, safetensors) and the critic into ``directory``."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.actor.save_pretrained(str(d))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.critic.state_dict().items()}, str(d / CRITIC_FILE))
        return d

    def load(self, directory) -> None:
        """Load adapters (+ critic when present) saved by :meth:`save`."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        d = Path(directory)
        weights = d / "adapter_model.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"{d}: no adapter_model.safetensors; pass a directory written by `sim2real align`")
        device = next(self.critic.parameters()).device
        result = set_peft_model_state_dict(self.actor, load_file(str(weights), device=str(device)))
        unexpected = getattr(result, "unexpected_keys", []) or []
        if unexpected:
            raise CheckpointError(f"{weights}: adapters do not fit this model (unexpected keys {unexpected[:3]}...); "
                                  "load them with the model they were trained on (--llm)")
        if (d / CRITIC_FILE).is_file():
            self.critic.load_state_dict(load_file(str(d / CRITIC_FILE), device=str(device)))
