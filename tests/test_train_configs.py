"""Every training recipe under config/train/ loads and names a preset shipped in models/."""
import pytest

from cosmos_policy_ros.model.config import get_preset, known_presets
from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.training.config import load_train_config

RECIPES = sorted(share_path('config', 'train').glob('*.yaml'))
DIT_RECIPES = [path for path in RECIPES if not path.name.startswith('vae_')]


@pytest.mark.parametrize('path', DIT_RECIPES, ids=lambda path: path.stem)
def test_training_recipe_loads_with_a_shipped_preset(path):
    config = load_train_config(path)
    assert config.name == path.stem, 'the run name is the recipe file name (runs/train/<name>)'
    assert isinstance(config.preset, str) and config.preset in known_presets()
    get_preset(config.preset)


@pytest.mark.parametrize('name', known_presets())
def test_every_shipped_preset_parses(name):
    preset = get_preset(name)
    assert preset.name == name
    for camera, box in preset.camera_crops.items():
        top, left, height, width = box
        assert 0 <= top < top + height <= 1 and 0 <= left < left + width <= 1, camera
