"""Citations of docs/references.md in the code name sections that exist."""

import re

from conftest import REPO_ROOT

CITATION = re.compile(r'docs/references\.md §(\d+)')


def test_every_cited_reference_section_exists():
    text = (REPO_ROOT / 'docs' / 'references.md').read_text()
    sections = set(re.findall(r'^## (\d+)\. ', text, flags=re.MULTILINE))
    cited = {}
    for path in (REPO_ROOT / 'stereo_derain_ros').rglob('*.py'):
        for number in CITATION.findall(path.read_text()):
            cited.setdefault(number, []).append(path.name)
    assert cited, 'the models cite docs/references.md'
    missing = {number: files for number, files in cited.items() if number not in sections}
    assert not missing, f'cited sections missing from docs/references.md: {missing}'


def test_no_code_cites_the_unshipped_reference_file():
    stale = [path.name for path in (REPO_ROOT / 'stereo_derain_ros').rglob('*.py')
             if 'reference section' in path.read_text()]
    assert not stale, f'cite docs/references.md §N instead of "reference section": {stale}'
