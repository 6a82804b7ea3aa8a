"""Fill in the chunk checksums that the rosbags MCAP writer leaves at zero.

MCAP chunks carry a CRC-32 of their uncompressed records, and readers (rosbags among them)
check it whenever it is not zero. rosbags 0.11 always writes zero, so a flipped or zeroed byte
inside an image message would read back silently. After the writer has closed a file, this
pass computes each chunk's CRC and writes it into the chunk header in place; nothing else in
the file moves. Compressed chunks would need their codec and are left at zero (our writers
never compress).
"""

from binascii import crc32
from pathlib import Path
import struct

MAGIC = b'\x89MCAP0\r\n'
_CHUNK, _FOOTER = 0x06, 0x02
_RECORD = struct.Struct('<BQ')
# message_start_time, message_end_time, uncompressed_size, uncompressed_crc, compression length
_CHUNK_HEAD = struct.Struct('<QQQII')


class McapFormatError(ValueError):
    """The file is not an MCAP file this pass understands."""


def write_chunk_crcs(path: Path) -> int:
    """Write the CRC-32 of every uncompressed chunk of the MCAP file `path`; return how many."""
    written = 0
    with Path(path).open('r+b') as stream:
        if stream.read(len(MAGIC)) != MAGIC:
            raise McapFormatError(f'{path} is not an MCAP file')
        while True:
            start = stream.tell()
            head = stream.read(_RECORD.size)
            if len(head) < _RECORD.size:
                raise McapFormatError(f'{path} ends without an MCAP footer')
            opcode, length = _RECORD.unpack(head)
            if opcode == _FOOTER:
                return written
            if opcode == _CHUNK:
                written += _fill_chunk_crc(stream, path)
            stream.seek(start + _RECORD.size + length)


def _fill_chunk_crc(stream, path: Path) -> int:
    """Fill the CRC of the chunk whose body starts at the stream position; return 1 if done."""
    body = stream.tell()
    *_, size, _, compression_length = _CHUNK_HEAD.unpack(stream.read(_CHUNK_HEAD.size))
    compression = stream.read(compression_length)
    (records_length,) = struct.unpack('<Q', stream.read(8))
    if compression:
        return 0
    records = stream.read(records_length)
    if len(records) != size:
        raise McapFormatError(f'{path} has a chunk of {len(records)} bytes that says {size}')
    stream.seek(body + 24)
    stream.write(struct.pack('<I', crc32(records)))
    return 1
