"""Scene text, candidates, the symbolic mode, the planners and the episode's planner hook (no LLM)."""
import numpy as np
import pytest

from sim2real.errors import InputError
from sim2real.planner.planners import (FixedPlanner, RandomPlanner, ScriptedPlanner, make_planner,
                                       parse_planner_spec)
from sim2real.planner.scene import SceneObject, describe, match_scenes, prompt, relations
from sim2real.planner.subgoals import DONE, candidates, parse
from sim2real.planner.symbolic import SymbolicEnv, symbolic_instance, task_instruction
from sim2real.tasks import load_all

MULTI_STEP = ["stack-block", "block-tower-corner", "put-block-in-bowl", "block-in-bowl-in-zone", "block-zone"]


@pytest.fixture(scope="module")
def tasks():
    return load_all()


def test_candidates_fill_templates_with_present_objects_and_filter_saycan_style(tasks):
    objs = [SceneObject("corner", "black", (0.5, 0, 0)), SceneObject("block", "red", (0.4, 0.1, 0.02)),
            SceneObject("block", "blue", (0.4, -0.1, 0.02))]
    c = candidates(tasks["block-tower-corner"], objs)
    assert c[-1] == DONE
    assert "place the red block in the corner" in c and "put the blue block on the red block" in c
    assert not any("green" in s for s in c)  # no missing object
    assert "put the red block on the red block" not in c  # no object onto itself
    assert len(c) == len(set(c)) == 2 + 2 + 1
    # without the corner, no sentence needs it
    assert not any("corner" in s for s in candidates(tasks["block-tower-corner"], objs[1:]))


def test_parse_inverts_the_fill(tasks):
    spec = tasks["put-block-in-bowl"]
    objs = [SceneObject("bowl", "blue", (0.5, 0, 0)), SceneObject("block", "red", (0.4, 0.1, 0.02))]
    sub = parse("put the red blocks in a blue bowl", spec, objs)
    assert sub.pick == ("red", "block") and sub.place == ("blue", "bowl")
    assert parse("juggle the red block", spec, objs) is None


def test_relations_and_scene_text():
    objs = [SceneObject("block", "red", (0.5, 0.0, 0.02)), SceneObject("block", "blue", (0.5, 0.005, 0.06)),
            SceneObject("bowl", "green", (0.3, 0.2, 0.0)), SceneObject("block", "yellow", (0.31, 0.21, 0.026)),
            SceneObject("block", "gray", (0.6, -0.2, 0.02))]
    rel = {(r.subject, r.relation, r.obj) for r in relations(objs)}
    assert rel == {(1, "on", 0), (3, "in", 2)}
    text = describe(objs)
    assert "The blue block is on the red block." in text and "The yellow block is in the green bowl." in text
    assert prompt(objs, "stack it.").endswith("Your task is to stack it. Your next step is to")


def test_symbolic_scripted_solves_every_multi_step_task(tasks):
    for name in MULTI_STEP:
        for seed in range(3):
            env = SymbolicEnv(tasks[name])
            env.reset(seed)
            planner = ScriptedPlanner()
            planner.reset(env.spec, env.instruction(), env.instance)
            for _ in range(env.budget):
                r, term, trunc, info = env.step(planner.plan(None).goal)
                if term or trunc:
                    break
            assert info["success"], (name, seed)


def test_symbolic_rewards_sum_to_one_minus_step_costs(tasks):
    env = SymbolicEnv(tasks["block-tower-corner"], step_cost=0.01)
    env.reset(4)
    planner = ScriptedPlanner()
    planner.reset(env.spec, env.instruction(), env.instance)
    total, steps = 0.0, 0
    while True:
        r, term, trunc, _ = env.step(planner.plan(None).goal)
        total, steps = total + r, steps + 1
        if term or trunc:
            break
    assert steps == 3 and total == pytest.approx(1.0 - 0.03)


def test_wrong_subgoals_earn_nothing_and_truncate(tasks):
    env = SymbolicEnv(tasks["stack-block"], step_cost=0.0)
    _, cands = env.reset(0)
    wrong = next(c for c in cands if c != DONE and c != env.instance.lang_goal())
    out = [env.step(wrong) for _ in range(env.budget)]
    assert all(o[0] <= 0 for o in out) and out[-1][2] and not out[-1][1]
    env.reset(0)
    assert env.step(DONE)[1]  # done terminates


def test_symbolic_sampling_matches_the_seed(tasks):
    a, b = symbolic_instance(tasks["put-block-in-bowl"], 7), symbolic_instance(tasks["put-block-in-bowl"], 7)
    assert task_instruction(a) == task_instruction(b)
    pa = [a.scene.pose(o.body)[0] for o in a.scene.objects]
    assert np.allclose(pa, [b.scene.pose(o.body)[0] for o in b.scene.objects])


def test_random_and_fixed_planners(tasks):
    env = SymbolicEnv(tasks["stack-block"])
    env.reset(1)
    rnd = RandomPlanner(seed=0)
    rnd.reset(env.spec, env.instruction(), env.instance)
    picks = {rnd.plan(None).goal for _ in range(60)}
    assert len(picks) > 5 and DONE in picks
    fixed = FixedPlanner()
    fixed.reset(env.spec, env.instruction(), env.instance)
    d = fixed.plan(None)
    assert d.goal == env.instance.lang_goal() and d.probabilities == [1.0]


def test_planner_specs_are_checked():
    assert parse_planner_spec("llm:/tmp/x") == ("llm", "/tmp/x")
    for bad in ("gpt", "random:x"):
        with pytest.raises(InputError):
            parse_planner_spec(bad)
    with pytest.raises(InputError, match="no such directory"):
        make_planner("llm:/nonexistent/adapters")
    with pytest.raises(InputError, match="ground truth"):
        p = ScriptedPlanner()
        p.reset(load_all()["stack-block"], "stack", None)
        p.plan(None)


def test_match_scenes_precision_recall():
    truth = [SceneObject("block", "red", (0.5, 0, 0.02)), SceneObject("block", "blue", (0.4, 0, 0.02))]
    det = [SceneObject("block", "red", (0.51, 0, 0.02)), SceneObject("bowl", "blue", (0.4, 0, 0.0))]
    m = match_scenes(det, truth)
    assert (m["precision"], m["recall"]) == (0.5, 0.5)


def test_episode_records_the_planner_and_done_ends_it(monkeypatch):
    """run_episode with a planner: the decision is recorded and 'done' ends the episode (reason done)."""
    import sim2real.episode as episode
    from sim2real.planner.planners import Decision

    class Planner:
        name = "stub"

        def __init__(self):
            self.n = 0

        def plan(self, obs):
            self.n += 1
            goal = "go" if self.n == 1 else DONE
            return Decision(goal, "scene", ["go", DONE], [0.5, 0.5], 0 if goal == "go" else 1, 0.3, 0.0, "stub")

    seen = []

    class Policy:
        name = "p"

        def act(self, obs, goal):
            seen.append(goal)
            raise RuntimeError("stop here")  # ends the step as policy_error after the goal was chosen

    monkeypatch.setattr(episode, "project_frames", lambda frames, ws: "obs")

    class Cam:
        def read(self):
            return "frame"

    from sim2real.robot import DryRunRobot

    records = []  # the episode homes the arm before its first capture: a robot that records, never moves
    res = episode.run_episode(Cam(), Policy(), DryRunRobot(), "task", max_steps=3, planner=Planner(),
                              on_step=records.append)
    assert seen == ["go"] and records[0].info["planner"]["goal"] == "go" and records[0].goal == "go"
    assert res.reason == "policy_error"
    p = Planner()
    p.n = 1  # next decision is done
    res = episode.run_episode(Cam(), Policy(), DryRunRobot(), "task", max_steps=3, planner=p, on_step=records.append)
    assert res.reason == "done" and seen == ["go"] and records[-1].info["planner"]["goal"] == DONE


def test_scene_from_a_synthetic_heightmap():
    """A red block, a green bowl (ring) and a blue zone painted into a heightmap are read back."""
    from sim2real.heightmap import HeightmapObservation
    from sim2real.planner.scene import scene_from_heightmap
    from sim2real.twin.objects import COLORS
    from sim2real.twin.scene import TABLE_RGBA
    from sim2real.workspace import GENSIM_WORKSPACE as ws

    rows, cols = ws.shape
    color = np.tile((np.array(TABLE_RGBA[:3]) * 255).astype(np.uint8), (rows, cols, 1))
    height = np.zeros((rows, cols), np.float32)

    def cells(x, y, half):
        r, c = ws.xyz_to_pix((x, y, 0))
        n = int(round(half / ws.pixel_size))
        return slice(r - n, r + n + 1), slice(c - n, c + n + 1)

    z = cells(0.35, -0.3, 0.06)
    color[z], height[z] = COLORS["blue"], 0.001
    b = cells(0.5, 0.0, 0.02)
    color[b], height[b] = COLORS["red"], 0.04
    rr, cc = np.mgrid[:rows, :cols]
    r0, c0 = ws.xyz_to_pix((0.6, 0.25, 0))
    dist = np.hypot(rr - r0, cc - c0) * ws.pixel_size
    ring = (dist < 0.06) & (dist > 0.05)
    color[ring], height[ring] = COLORS["green"], 0.04
    found = {(o.color, o.kind): o for o in scene_from_heightmap(HeightmapObservation(color, height, ws))}
    assert set(found) == {("blue", "zone"), ("red", "block"), ("green", "bowl")}
    assert np.allclose(found[("red", "block")].xyz[:2], (0.5, 0.0), atol=0.01)
    assert found[("red", "block")].xyz[2] == pytest.approx(0.02, abs=0.005)
    assert np.allclose(found[("green", "bowl")].xyz[:2], (0.6, 0.25), atol=0.01)
