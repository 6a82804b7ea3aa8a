"""Opening input bags with clear errors, and copying their connections into an output bag."""

from collections.abc import Iterator
import contextlib
from pathlib import Path

from rosbags.interfaces import Connection, ConnectionExtRosbag2
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.topics import IMAGE_TYPES

_TYPESTORE: Typestore | None = None


def typestore() -> Typestore:
    """Return the ROS 2 Jazzy message definitions used to (de)serialise image messages."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Reader]:
    """Open a rosbag2 directory (MCAP or sqlite3) read-only, turning failures into `BagError`."""
    path = Path(path)
    if not path.exists():
        raise BagError(f'input bag {path} does not exist')
    if not path.is_dir() or not (path / 'metadata.yaml').is_file():
        raise BagError(f'input {path} is not a rosbag2 directory (no metadata.yaml inside)')
    reader = Reader(path)
    try:
        reader.open()
    except Exception as error:  # noqa: BLE001 - rosbags raises many kinds for damaged bags
        raise BagError(f'cannot open bag {path}: it looks corrupt or incomplete '
                       f'({_describe(error)})') from None
    try:
        yield reader
    finally:
        reader.close()


def _describe(error: BaseException) -> str:
    """Say in one line why a bag did not open; YAML errors become problem + line and column."""
    cause: BaseException | None = error
    while cause is not None:
        mark = getattr(cause, 'problem_mark', None)
        if mark is not None and getattr(cause, 'problem', None):
            return (f'metadata.yaml is not valid YAML: {cause.problem} at line {mark.line + 1}, '
                    f'column {mark.column + 1}')
        cause = cause.__cause__ or cause.__context__
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0]


def describe_image_topics(reader: Reader) -> str:
    """Return a one-line list of the bag's image topics with their types, for error messages."""
    entries = [f'{c.topic} ({c.msgtype.rsplit("/", 1)[-1]}, {c.msgcount} msgs)'
               for c in sorted(reader.connections, key=lambda c: c.topic)
               if c.msgtype in IMAGE_TYPES]
    return ', '.join(entries) if entries else 'none'


def connection_for(reader: Reader, topic: str, role: str) -> Connection:
    """Return the single connection of `topic`, or explain which image topics exist."""
    matches = [c for c in reader.connections if c.topic == topic]
    if not matches:
        raise BagError(f'{role} topic {topic} is not in the bag; its image topics are: '
                       f'{describe_image_topics(reader)}')
    if len(matches) > 1:
        raise BagError(f'{role} topic {topic} has {len(matches)} connections with different '
                       'types or QoS; expected one')
    return matches[0]


def add_connection_like(writer: Writer, source: Connection, topic: str | None = None
                        ) -> Connection:
    """Add a connection to `writer` with the type, definition and QoS of `source`.

    The message definition and type hash are copied from the input so that custom message
    types round-trip without being known here; only bags that lack them (old sqlite3 bags) fall
    back to the Jazzy definitions.
    """
    ext = source.ext
    qos = ext.offered_qos_profiles if isinstance(ext, ConnectionExtRosbag2) else []
    serialization = ext.serialization_format if isinstance(ext, ConnectionExtRosbag2) else 'cdr'
    definition = source.msgdef.data if source.msgdef is not None else ''
    if definition and source.digest:
        return writer.add_connection(topic or source.topic, source.msgtype, msgdef=definition,
                                     rihs01=source.digest, serialization_format=serialization,
                                     offered_qos_profiles=qos)
    if source.msgtype not in typestore().types:
        raise BagError(f'topic {source.topic} has type {source.msgtype} without a stored message '
                       'definition, and the type is not a standard ROS 2 Jazzy message')
    return writer.add_connection(topic or source.topic, source.msgtype, typestore=typestore(),
                                 serialization_format=serialization, offered_qos_profiles=qos)
