"""PPO + LoRA over candidate sentences (tiny random Llama, CPU, seconds)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sim2real.compat import ensure_torchvision  # noqa: E402

ensure_torchvision()
pytest.importorskip("peft")

from planner_factory import tiny_llama, tiny_tokenizer  # noqa: E402

from sim2real.errors import ConfigError  # noqa: E402
from sim2real.planner.agent import LLMAgent  # noqa: E402
from sim2real.planner.ppo import PPOConfig, gae, last_checkpoint, train  # noqa: E402

PROMPT = "you see a red block and a blue bowl . your next step is to"
CANDS = ["put the red block in the blue bowl", "done"]


class ToyEnv:
    """One-step episodes: reward 1 for the rewarded candidate, 0 otherwise."""

    def __init__(self, rewarded: int):
        self.rewarded = rewarded

    def reset(self, seed):
        return self.observation()

    def observation(self):
        return PROMPT, list(CANDS)

    def step(self, sentence):
        ok = sentence == CANDS[self.rewarded]
        return float(ok), True, False, {"success": ok}


def toy_config(**kw):
    base = dict(total_steps=16 * 30, num_envs=2, num_steps=8, policy_lr=3e-3, value_lr=1e-3, value_minibatches=2,
                policy_minibatches=4, grad_accum=1, target_kl=None, save_every=10)
    base.update(kw)
    return PPOConfig(**base)


def make_agent(seed=0):
    tok = tiny_tokenizer()
    return LLMAgent(tiny_llama(len(tok), seed=seed), tok, normalization="word")


@pytest.mark.parametrize("rewarded", [0, 1])
def test_ppo_raises_the_probability_of_the_rewarded_candidate(rewarded):
    agent = make_agent()
    p0 = agent.probabilities(PROMPT, CANDS)[rewarded]
    history = train(agent, [ToyEnv(rewarded), ToyEnv(rewarded)], toy_config(), progress=False)
    p1 = agent.probabilities(PROMPT, CANDS)[rewarded]
    assert p1 > 0.95, (p0, p1)
    assert history[-1]["success_rate"] > history[0]["success_rate"] or history[0]["success_rate"] > 0.9


def test_first_ratio_is_one_and_base_weights_never_change():
    agent = make_agent(seed=1)
    base = {n: p.detach().clone() for n, p in agent.actor.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in agent.actor.named_parameters() if "lora_" in n}
    critic = {n: p.detach().clone() for n, p in agent.critic.named_parameters()}
    assert lora and all(not agent.actor.get_parameter(n).requires_grad for n in base)
    history = train(agent, [ToyEnv(0), ToyEnv(0)], toy_config(total_steps=16 * 3), progress=False)
    assert history[0]["first_ratio_max_abs_dev"] < 1e-5
    for n, p in agent.actor.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n]), n
    assert any(not torch.equal(p, lora[n]) for n, p in agent.actor.named_parameters() if "lora_" in n)
    assert any(not torch.equal(p, critic[n]) for n, p in agent.critic.named_parameters())


def test_adapters_and_critic_round_trip(tmp_path):
    agent = make_agent(seed=2)
    train(agent, [ToyEnv(1), ToyEnv(1)], toy_config(total_steps=16 * 2), progress=False)
    agent.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").is_file()
    fresh = make_agent(seed=2)  # same base weights, new (zero-effect) adapters
    assert not np.allclose(fresh.probabilities(PROMPT, CANDS), agent.probabilities(PROMPT, CANDS), atol=1e-7)
    fresh.load(tmp_path / "ckpt")
    np.testing.assert_allclose(fresh.probabilities(PROMPT, CANDS), agent.probabilities(PROMPT, CANDS), atol=1e-6)
    torch.testing.assert_close(fresh.get_value([PROMPT]), agent.get_value([PROMPT]))


def test_training_resumes_from_the_last_checkpoint(tmp_path):
    cfg = toy_config(total_steps=16 * 4, save_every=2)
    agent = make_agent(seed=3)
    train(agent, [ToyEnv(0), ToyEnv(0)], PPOConfig(**{**cfg.__dict__, "total_steps": 16 * 2}), out=tmp_path,
          progress=False)
    assert last_checkpoint(tmp_path).name == "update_00002"
    resumed = make_agent(seed=3)
    history = train(resumed, [ToyEnv(0), ToyEnv(0)], cfg, out=tmp_path, progress=False)
    assert [h["update"] for h in history] == [1, 2, 3, 4]
    assert last_checkpoint(tmp_path).name == "update_00004" and (tmp_path / "learning_curve.png").is_file()


def test_gae_tells_termination_from_truncation():
    r = np.array([[1.0], [1.0]])
    v = np.array([[0.5], [0.5]])
    final = np.array([[0.0], [2.0]])
    gamma, lam = 0.9, 0.8
    # step 0 continues, step 1 terminates: no bootstrap after it
    adv, ret = gae(r, v, [[False], [True]], [[False], [False]], final, [7.0], gamma, lam)
    d1 = 1.0 - 0.5
    d0 = 1.0 + gamma * 0.5 - 0.5
    np.testing.assert_allclose(adv[:, 0], [d0 + gamma * lam * d1, d1])
    # step 1 truncated: bootstrap from V(final observation) = 2, not from next_value 7
    adv, _ = gae(r, v, [[False], [False]], [[False], [True]], final, [7.0], gamma, lam)
    np.testing.assert_allclose(adv[1, 0], 1.0 + gamma * 2.0 - 0.5)
    # nothing ends: bootstrap from next_value
    adv, _ = gae(r, v, [[False], [False]], [[False], [False]], final, [7.0], gamma, lam)
    np.testing.assert_allclose(adv[1, 0], 1.0 + gamma * 7.0 - 0.5)
    # an episode ending at step 0 does not leak the next episode's advantage into it
    adv, _ = gae(r, v, [[True], [False]], [[False], [False]], final, [7.0], gamma, lam)
    np.testing.assert_allclose(adv[0, 0], 1.0 - 0.5)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="policy_minibatches"):
        PPOConfig(num_envs=2, num_steps=3, policy_minibatches=4, value_minibatches=1, total_steps=6)
    with pytest.raises(ConfigError, match="gamma"):
        PPOConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="unknown"):
        PPOConfig.from_dict({"lr": 1})


def test_an_unaligned_planner_refuses_a_model_an_agent_has_wrapped():
    """peft injects LoRA layers into the model it wraps: an unaligned planner sharing that model object
    would score with the adapters, so it refuses (load a second copy instead)."""
    from sim2real.errors import InputError
    from sim2real.planner.planners import _refuse_injected_adapters

    tok = tiny_tokenizer()
    model = tiny_llama(len(tok))
    _refuse_injected_adapters(model)  # the base model is fine
    LLMAgent(model, tok)
    with pytest.raises(InputError, match="separate copy"):
        _refuse_injected_adapters(model)
