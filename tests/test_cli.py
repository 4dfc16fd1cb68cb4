"""The `cosmos-policy-ros` command line: key=value overrides before and after options."""
import pytest

from cosmos_policy_ros import cli


def test_overrides_are_accepted_after_options():
    args = cli.parse(['train', 'config/train/sim_transfer_cube.yaml', 'optim.lr=1e-4',
                      '--resume', 'optim.steps=5000', 'optim.decay_steps=5000'])
    assert args.resume
    assert args.overrides == ['optim.lr=1e-4', 'optim.steps=5000', 'optim.decay_steps=5000']
    args = cli.parse(['up', 'aloha_policy', '--dry-run', 'driver:=interbotix'])
    assert args.overrides == ['driver:=interbotix']


def test_unknown_options_are_still_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(['train', 'config.yaml', '--bogus'])
    assert exit_info.value.code == 2
    assert 'unrecognized arguments: --bogus' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse(['eval', '--checkpoint', 'x', 'optim.steps=3'])    # eval takes no overrides
