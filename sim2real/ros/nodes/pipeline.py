"""``pipeline`` node: heightmap, policy and executor stages in one process (lowest latency).

The stages are the same classes the standalone nodes use, with the same parameters (the union,
see ``sim2real.ros.params.NODES['pipeline']``) and the same published topics (so RViz and the
trials node work unchanged), but hand their results over in-process: each heightmap goes
straight to the policy, each action straight to the executor, without a DDS round trip. Run the
standalone nodes instead to split the stages across machines (e.g. the policy on a GPU box).
"""
from __future__ import annotations

from sim2real.ros.nodes._common import spin_node
from sim2real.ros.params import declare, params_of

NODE = "pipeline"


def _subset(values: dict, node: str) -> dict:
    return {p.name: values[p.name] for p in params_of(node)}


def make_node(overrides=None, policy=None, robot=None):
    from rclpy.node import Node

    from sim2real.ros.nodes.executor import ExecutorStage
    from sim2real.ros.nodes.heightmap import HeightmapStage
    from sim2real.ros.nodes.policy import PolicyStage

    class PipelineNode(Node):
        def __init__(self):
            super().__init__(NODE)
            values = declare(self, NODE, overrides)
            self.executor_stage = ExecutorStage(self, _subset(values, "executor"), robot=robot, subscribe=False)
            self.policy_stage = PolicyStage(self, _subset(values, "policy"), policy=policy,
                                            on_action=self._on_action, subscribe_heightmap=False)
            self.heightmap_stage = HeightmapStage(self, _subset(values, "heightmap"),
                                                  on_observation=self.policy_stage.set_observation)
            self.heightmap_stage.on_problem = self.policy_stage.set_problem

        def _on_action(self, action, goal, t_goal):
            obs = self.policy_stage.latest
            self.executor_stage.handle_action(action, goal, t_goal, None if obs is None else obs.height)

        def shutdown(self):
            self.executor_stage.shutdown()

    return PipelineNode()


def main(args=None) -> int:
    """Console entry ``pipeline_node``."""
    return spin_node(lambda: make_node(), args, NODE)
