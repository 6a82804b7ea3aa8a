"""Read files out of Qt binary resource bundles (`.rcc`), as GCompris ships its photographs.

The format (Qt's rcc, versions 1-3): a 'qres' header gives the offsets of a node tree, a data
block and a name table. A node is a directory (children) or a file (an offset into the data
block); a file's bytes are stored raw, zlib-compressed behind a 4-byte length (qCompress) or,
from version 3, as a zstd frame. Only stdlib parsing is needed, so no Qt install is required.
"""

from collections.abc import Iterator
from dataclasses import dataclass
import enum
from pathlib import PurePosixPath
import struct
import zlib

MAGIC = b'qres'


class NodeFlags(enum.IntFlag):
    """The flags field of a tree node: how a file is stored, or that the node is a directory."""

    COMPRESSED = 0x01
    DIRECTORY = 0x02
    ZSTD = 0x04


@dataclass(frozen=True)
class ResourceEntry:
    """One file inside a bundle: its path and how its bytes are stored."""

    path: PurePosixPath
    data_offset: int
    flags: NodeFlags


class ResourceFormatError(ValueError):
    """A file that is not a readable Qt resource bundle."""


class QtResourceBundle:
    """An opened `.rcc` file: list its files and read any of them."""

    def __init__(self, blob: bytes, name: str = '<rcc>') -> None:
        if len(blob) < 20 or blob[:4] != MAGIC:
            raise ResourceFormatError(f'{name} is not a Qt resource bundle (no "qres" header)')
        self.blob, self.name = blob, name
        version, self.tree, self.data, self.names = struct.unpack_from('>4I', blob, 4)
        if version not in (1, 2, 3):
            raise ResourceFormatError(f'{name}: unsupported rcc version {version}; expected 1-3')
        self.node_size = 14 if version == 1 else 22

    def _name(self, offset: int) -> str:
        start = self.names + offset
        (length,) = struct.unpack_from('>H', self.blob, start)
        return self.blob[start + 6:start + 6 + 2 * length].decode('utf-16-be')

    def entries(self) -> Iterator[ResourceEntry]:
        """Yield every file in the bundle, depth first."""
        stack = [(0, PurePosixPath('/'))]
        while stack:
            node, parent = stack.pop()
            start = self.tree + node * self.node_size
            name_offset, raw_flags = struct.unpack_from('>IH', self.blob, start)
            flags = NodeFlags(raw_flags)
            path = parent if node == 0 else parent / self._name(name_offset)
            if NodeFlags.DIRECTORY in flags:
                count, first = struct.unpack_from('>II', self.blob, start + 6)
                stack.extend((first + index, path) for index in reversed(range(count)))
            else:
                (offset,) = struct.unpack_from('>I', self.blob, start + 10)
                yield ResourceEntry(path, offset, flags)

    def read(self, entry: ResourceEntry) -> bytes:
        """Return a file's bytes, decompressed."""
        start = self.data + entry.data_offset
        (size,) = struct.unpack_from('>I', self.blob, start)
        payload = self.blob[start + 4:start + 4 + size]
        if NodeFlags.ZSTD in entry.flags:
            raise ResourceFormatError(f'{self.name}:{entry.path} is zstd-compressed, which this '
                                      'reader does not decode')
        if NodeFlags.COMPRESSED in entry.flags:
            return zlib.decompress(payload[4:])
        return payload
