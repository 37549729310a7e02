"""rosbag2 (mcap) per trial: written through rosbags, read back by rosbags, every topic intact."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from test_kill_resume import fake_step

from sim2real.trials.campaign import Campaign, run_campaign
from sim2real.trials.log import TrialLog, load_trials
from sim2real.trials.operator import AutoOperator
from sim2real.trials.rosbag import BAG_VERSION, image_to_array, read_bag, write_trial_bag


@pytest.fixture(scope="module")
def campaign_with_bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")

    def run_trial(task, trial, seed, on_step):
        steps = [fake_step(task, trial, seed, i) for i in range(2)]
        steps[1]["executed"] = {"pick": (steps[1]["action"].pick.xyz, steps[1]["action"].pick.quat_xyzw)}
        for s in steps:
            on_step(s)
        return {"success": False, "steps": 2, "reason": "safety_stop"}

    with TrialLog(out, rosbag=True) as log:
        run_campaign(Campaign(tasks=("stack-block",), trials=1), log, run_trial, AutoOperator(), policy="p",
                     progress=False)
    return out


def test_every_topic_round_trips_through_rosbags(campaign_with_bags):
    (rec,) = load_trials(campaign_with_bags)
    bag = campaign_with_bags / rec["bag"]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == BAG_VERSION and meta["storage_identifier"] == "mcap"
    msgs = read_bag(bag)
    steps = [fake_step("stack-block", 0, rec["seed"], i) for i in range(2)]
    expect_types = {
        "/camera/color/image_raw": "sensor_msgs/msg/Image",
        "/camera/aligned_depth_to_color/image_raw": "sensor_msgs/msg/Image",
        "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo",
        "/sim2real/heightmap/color": "sensor_msgs/msg/Image",
        "/sim2real/heightmap/height": "sensor_msgs/msg/Image",
        "/sim2real/action": "geometry_msgs/msg/PoseArray",
        "/sim2real/pick_pose": "geometry_msgs/msg/PoseStamped",
        "/sim2real/place_pose": "geometry_msgs/msg/PoseStamped",
        "/sim2real/executed": "geometry_msgs/msg/PoseArray",
        "/sim2real/goal": "std_msgs/msg/String",
        "/sim2real/step": "std_msgs/msg/String",
        "/sim2real/label": "std_msgs/msg/String",
    }
    assert {t: m[0][1] for t, m in msgs.items()} == expect_types
    for i, s in enumerate(steps):
        np.testing.assert_array_equal(image_to_array(msgs["/camera/color/image_raw"][i][2]), s["frames"][0].color)
        np.testing.assert_array_equal(image_to_array(msgs["/camera/aligned_depth_to_color/image_raw"][i][2]),
                                      s["frames"][0].depth)
        np.testing.assert_array_equal(image_to_array(msgs["/sim2real/heightmap/color"][i][2]), s["observation"].color)
        np.testing.assert_array_equal(image_to_array(msgs["/sim2real/heightmap/height"][i][2]),
                                      s["observation"].height)
        info = msgs["/camera/color/camera_info"][i][2]
        np.testing.assert_allclose(info.k.reshape(3, 3), s["frames"][0].intrinsics.K)
        assert (info.width, info.height) == (32, 24)
        poses = msgs["/sim2real/action"][i][2].poses
        for pose, pp in zip(poses, (s["action"].pick, s["action"].place)):
            np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], pp.xyz)
            np.testing.assert_allclose([pose.orientation.x, pose.orientation.y, pose.orientation.z,
                                        pose.orientation.w], pp.quat_xyzw)
        assert msgs["/sim2real/action"][i][2].header.frame_id == "base_link"
        assert msgs["/sim2real/goal"][i][2].data == "solve stack-block"
    assert len(msgs["/sim2real/executed"]) == 2 and len(msgs["/sim2real/executed"][1][2].poses) == 1
    label = json.loads(msgs["/sim2real/label"][0][2].data)
    assert label["label"]["outcome"] == "failure" and label["label"]["category"] == "safety_stop"
    times = [t for topic in msgs.values() for t, _, _ in topic]
    assert msgs["/sim2real/label"][0][0] == max(times)  # the label comes last


def test_jazzy_message_definitions_and_no_overwrite(campaign_with_bags, tmp_path):
    from sim2real.errors import InputError

    (rec,) = load_trials(campaign_with_bags)
    trial_dir = campaign_with_bags / rec["artefacts"]
    bag = write_trial_bag(trial_dir, rec, tmp_path / "jazzy", distro="jazzy", base_frame="world")
    msgs = read_bag(bag, distro="jazzy")
    assert msgs["/sim2real/pick_pose"][0][2].header.frame_id == "world"
    with pytest.raises(InputError, match="never overwritten"):
        write_trial_bag(trial_dir, rec, bag)
    with pytest.raises(InputError, match="distro"):
        write_trial_bag(trial_dir, rec, tmp_path / "x", distro="noetic")
