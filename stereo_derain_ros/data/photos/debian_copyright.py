"""Find the licence of a file inside a Debian package from its machine-readable copyright file.

DEP-5 copyright files list `Files:` glob patterns with a `License:`; the last stanza whose
patterns match a path wins. GCompris converts its JPEG and PNG photos to WebP when it builds its
resource bundles, so a raster pattern such as `fish1.jpg` also matches `fish1.webp`.
"""

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

RASTER_SUFFIXES = ('.jpg', '.jpeg', '.png', '.webp')


@dataclass(frozen=True)
class FilesStanza:
    patterns: tuple[str, ...]
    license: str


def parse_copyright(text: str) -> list[FilesStanza]:
    """Return the Files stanzas of a DEP-5 copyright file, in file order."""
    stanzas = []
    for block in text.split('\n\n'):
        fields: dict[str, list[str]] = {}
        current = None
        for line in block.splitlines():
            if line[:1] in (' ', '\t') and current:
                fields[current].append(line.strip())
            elif ':' in line:
                current, _, value = line.partition(':')
                fields[current] = [value.strip()]
        if 'Files' in fields and 'License' in fields:
            patterns = tuple(' '.join(fields['Files']).split())
            stanzas.append(FilesStanza(patterns, fields['License'][0] or 'unknown'))
    return stanzas


def _raster_stem(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    return path[:-len(suffix)] + '.*' if suffix in RASTER_SUFFIXES else path


def license_of(stanzas: list[FilesStanza], path: str) -> str:
    """Return the licence of `path` (relative to the source tree), 'unknown' when none matches."""
    found = 'unknown'
    target = _raster_stem(path)
    for stanza in stanzas:
        if any(fnmatchcase(path, pattern) or fnmatchcase(target, _raster_stem(pattern))
               for pattern in stanza.patterns):
            found = stanza.license
    return found
