"""`python -m sim2real.policy.random_checkpoint`: a random checkpoint a newcomer can try things with."""
import pytest

torch = pytest.importorskip("torch")

from sim2real.policy.checkpoint import check_values, detect_family, expected_entries  # noqa: E402
from sim2real.policy.random_checkpoint import main, random_state_dict  # noqa: E402


@pytest.mark.parametrize("family", ["gensim", pytest.param("cliport", marks=pytest.mark.slow)])
def test_random_state_dict_is_a_valid_checkpoint_of_its_family(family):
    sd = random_state_dict(family, seed=1)
    assert list(sd) == list(expected_entries(family))
    assert detect_family(sd) == family
    check_values(sd, family)
    a = [k for k in sd if k.startswith("attention.attn_stream_two.clip_rn50.")][0]
    assert torch.equal(sd[a], sd[a.replace("attention.attn_stream_two", "transport.key_stream_two")])


def test_command_refuses_a_directory_as_output(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
