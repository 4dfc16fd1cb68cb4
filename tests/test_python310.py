"""Every module stays Python 3.10 code (Humble's Python), ROS nodes included (ROS-free check).

Under Python 3.10 (scripts/test.sh's 3.10 stage) every file is compiled, which catches newer
syntax in modules that need rclpy and so are not imported there; everywhere, the sources are
searched for standard-library names that 3.10 lacks.
"""
import re

from cosmos_policy_ros.paths import REPO_ROOT

SOURCES = sorted(p for folder in ('cosmos_policy_ros', 'benchmarks', 'launch', 'tests', 'scripts')
                 for p in (REPO_ROOT / folder).rglob('*.py')) + [REPO_ROOT / 'setup.py']
# Added in 3.11 or later.
NEWER_NAMES = re.compile(r'\b(import tomllib|from tomllib|typing import [^\n]*\b(Self|'
                         r'LiteralString|Never|assert_never|reveal_type|Required|NotRequired)\b|'
                         r'StrEnum|datetime\.UTC|from datetime import [^\n]*\bUTC\b|'
                         r'ExceptionGroup|TaskGroup|except\*|asyncio\.timeout\(|'
                         r'hashlib\.file_digest|\.add_note\()')


def test_sources_compile_with_this_python():
    for path in SOURCES:
        compile(path.read_text(), str(path), 'exec')
    assert len(SOURCES) > 50


def test_no_standard_library_names_newer_than_python_310():
    found = [f'{path.relative_to(REPO_ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: '
             f'{match.group(0)}'
             for path in SOURCES if path.name != 'test_python310.py'
             for text in [path.read_text()] for match in NEWER_NAMES.finditer(text)]
    assert not found, found

