"""The ROS environment (ROS-free): the Fast DDS profile reaches Fast DDS 2.x and 3 alike."""
import pytest

from cosmos_policy_ros.paths import share_path
from cosmos_policy_ros.rosenv import (
    PROFILE_ENV_VARS,
    loopback_env,
    profile_variables,
    use_robot_profile,
)

FAST_DDS_2, FAST_DDS_3 = 'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'
LOOPBACK = str(share_path('config', 'fastdds_loopback.xml'))
ROBOT = str(share_path('config', 'fastdds_robot.xml'))


def test_both_profile_variables_are_known():
    assert set(PROFILE_ENV_VARS) == {FAST_DDS_2, FAST_DDS_3}


@pytest.fixture
def prefixes(tmp_path):
    """ROS install prefixes with the share/ folder of Fast DDS 2.x, of 3.x, or neither."""
    for name, folder in (('jazzy', 'fastrtps'), ('kilted', 'fastdds')):
        (tmp_path / name / 'share' / folder).mkdir(parents=True)
    (tmp_path / 'none').mkdir()
    return {name: [str(tmp_path / name)] for name in ('jazzy', 'kilted', 'none')}


def test_the_variable_follows_the_fast_dds_version(prefixes):
    assert profile_variables({'ROS_DISTRO': 'humble'}) == (FAST_DDS_2,)
    assert profile_variables({'ROS_DISTRO': 'jazzy'}) == (FAST_DDS_2,)
    assert profile_variables({'ROS_DISTRO': 'kilted'}) == (FAST_DDS_3,)
    assert profile_variables({}, prefixes['jazzy']) == (FAST_DDS_2,)      # PyPI wheels: the venv
    assert profile_variables({}, prefixes['kilted']) == (FAST_DDS_3,)
    assert set(profile_variables({}, prefixes['none'])) == {FAST_DDS_2, FAST_DDS_3}
    both = prefixes['jazzy'] + prefixes['kilted']
    assert set(profile_variables({}, both)) == {FAST_DDS_2, FAST_DDS_3}
    # The environment's own ROS prefixes are searched too.
    assert profile_variables({'AMENT_PREFIX_PATH': prefixes['jazzy'][0]},
                             prefixes['none']) == (FAST_DDS_2,)


@pytest.mark.parametrize('distro, variable', [('jazzy', FAST_DDS_2), ('kilted', FAST_DDS_3)])
def test_processes_we_start_get_the_loopback_profile(distro, variable):
    # A profile of the caller's (one opening UDP on every interface, say) is replaced, whichever
    # variable held it: every process the CLI and tests start stays on loopback.
    env = loopback_env(3, base={'ROS_DISTRO': distro, FAST_DDS_2: '/etc/wide_open.xml',
                                FAST_DDS_3: '/etc/wide_open.xml'})
    assert {k: v for k, v in env.items() if k in PROFILE_ENV_VARS} == {variable: LOOPBACK}


def test_nodes_default_to_the_robot_profile(prefixes):
    for name, variables in (('jazzy', {FAST_DDS_2}), ('kilted', {FAST_DDS_3}),
                            ('none', {FAST_DDS_2, FAST_DDS_3})):
        env = {}
        use_robot_profile(env, prefixes[name])
        assert env == dict.fromkeys(variables, ROBOT), name


@pytest.mark.parametrize('chosen', [FAST_DDS_2, FAST_DDS_3])
@pytest.mark.parametrize('installed', ['jazzy', 'kilted'])
def test_a_profile_the_user_chose_reaches_the_installed_fast_dds(chosen, installed, prefixes):
    """A Humble habit (FASTRTPS_...) works on Kilted, and a Kilted one on Jazzy."""
    env = {chosen: '/home/me/my_profile.xml'}
    use_robot_profile(env, prefixes[installed])
    wanted = FAST_DDS_2 if installed == 'jazzy' else FAST_DDS_3
    assert env == {wanted: '/home/me/my_profile.xml'}


def test_another_rmw_is_left_alone(prefixes):
    env = {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    use_robot_profile(env, prefixes['kilted'])
    assert env == {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}


@pytest.mark.parametrize('name', ['fastdds_loopback.xml', 'fastdds_robot.xml'])
def test_profiles_are_valid_for_the_installed_fast_dds(name):
    """Against the XML schema that the installed Fast DDS ships (2.14 in the Jazzy environment,
    3.x in the Kilted one), found in the venv's share/. The parsers ignore the namespace, whose
    name changed with 3.0, so the document is checked in the schema's own."""
    import sys
    from pathlib import Path
    etree = pytest.importorskip('lxml.etree', reason='lxml validates the XML schema')
    share = Path(sys.prefix, 'share')
    schemas = sorted(share.glob('fast*_profiles.xsd')) + sorted(share.glob('fast*/*_profiles.xsd'))
    if not schemas:
        pytest.skip(f'no Fast DDS XML schema under {share} (an environment without ROS)')
    schema_doc = etree.parse(str(schemas[0]))
    schema = etree.XMLSchema(schema_doc)
    namespace = schema_doc.getroot().get('targetNamespace')
    text = share_path('config', name).read_text()
    assert 'xmlns="http://www.eprosima.com"' in text
    text = text.replace('xmlns="http://www.eprosima.com"', f'xmlns="{namespace}"')
    document = etree.fromstring(text.encode())
    assert schema.validate(document), (schemas[0], schema.error_log)
