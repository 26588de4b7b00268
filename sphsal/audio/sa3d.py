"""Google's spatial-audio metadata (the ``SA3D`` box of the spatial-media RFC) in MP4/MOV files.

The box sits inside the first audio track's sound sample entry:
``moov/trak/mdia/minf/stbl/stsd/<mp4a|lpcm|sowt|...>/SA3D``. Its payload (big endian) is
``version u8, ambisonic_type u8, ambisonic_order u32, ambisonic_channel_ordering u8 (0 = ACN),
ambisonic_normalization u8 (0 = SN3D, 1 = N3D), num_channels u32, channel_map u32 x num_channels``;
``channel_map[i]`` is the ambisonic component (in the stated ordering) stored in track channel ``i``.

The ISO-BMFF boxes are walked here directly (box size, type; 64-bit ``largesize``; size 0 = to the end).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from sphsal.atomic import atomic_path

__all__ = ["SpatialAudioMetadata", "read_sa3d", "insert_sa3d", "open_media"]

_PATH_TO_SAMPLE_TABLE = (b"mdia", b"minf", b"stbl")


@dataclass(frozen=True)
class SpatialAudioMetadata:
    """Contents of an ``SA3D`` box (field names as in the spatial-media RFC)."""

    ambisonic_order: int
    channel_map: tuple[int, ...]
    ambisonic_channel_ordering: int = 0
    ambisonic_normalization: int = 0
    ambisonic_type: int = 0
    version: int = 0

    @classmethod
    def ambix(cls, order: int) -> SpatialAudioMetadata:
        """Metadata of a plain ambiX track: ACN order, SN3D, identity channel map."""
        return cls(ambisonic_order=order, channel_map=tuple(range((order + 1) ** 2)))

    @property
    def num_channels(self) -> int:
        return len(self.channel_map)

    @property
    def normalization(self) -> str:
        """``"sn3d"`` or ``"n3d"``; ``ValueError`` for a code the RFC does not define."""
        names = {0: "sn3d", 1: "n3d"}
        if self.ambisonic_normalization not in names:
            raise ValueError(f"SA3D ambisonic_normalization {self.ambisonic_normalization} is not defined "
                             "(0 = SN3D, 1 = N3D)")
        return names[self.ambisonic_normalization]

    def to_box(self) -> bytes:
        """The complete ``SA3D`` box (8-byte header + payload)."""
        payload = struct.pack(">BBIBBI", self.version, self.ambisonic_type, self.ambisonic_order,
                              self.ambisonic_channel_ordering, self.ambisonic_normalization,
                              self.num_channels)
        payload += struct.pack(f">{self.num_channels}I", *self.channel_map)
        return struct.pack(">I4s", 8 + len(payload), b"SA3D") + payload

    @classmethod
    def from_payload(cls, payload: bytes, path) -> SpatialAudioMetadata:
        """Parse an ``SA3D`` payload (the box without its header); ``ValueError`` naming ``path``."""
        if len(payload) < 12:
            raise ValueError(f"{path}: SA3D box too short ({len(payload)} bytes)")
        version, kind, order, ordering, norm, count = struct.unpack_from(">BBIBBI", payload)
        if len(payload) < 12 + 4 * count:
            raise ValueError(f"{path}: SA3D box declares {count} channels but holds fewer")
        channel_map = struct.unpack_from(f">{count}I", payload, 12)
        return cls(ambisonic_order=order, channel_map=tuple(channel_map), ambisonic_channel_ordering=ordering,
                   ambisonic_normalization=norm, ambisonic_type=kind, version=version)


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int  # offset of the size field
    header: int  # header length (8, or 16 with a largesize)
    end: int

    @property
    def payload(self) -> int:
        return self.start + self.header


def _boxes(buf: bytes, start: int, end: int, path) -> Iterator[_Box]:
    """The boxes laid end to end in ``buf[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise ValueError(f"{path}: truncated MP4 box header at byte {pos}")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"{path}: malformed MP4 box {kind!r} at byte {pos} (size {size})")
        yield _Box(kind, pos, header, pos + size)
        pos += size


def _child(buf: bytes, box: _Box, kind: bytes, path, skip: int = 0) -> _Box | None:
    return next((b for b in _boxes(buf, box.payload + skip, box.end, path) if b.kind == kind), None)


def _sample_entry_children(buf: bytes, entry: _Box) -> int:
    """Offset of the first child box of a sound sample entry (QuickTime versions 0, 1 and 2)."""
    version = struct.unpack_from(">H", buf, entry.payload + 8)[0] if entry.payload + 10 <= entry.end else 0
    return entry.payload + 28 + {1: 16, 2: 36}.get(version, 0)


def _audio_chain(buf: bytes, moov: _Box, path) -> list[_Box] | None:
    """``[trak, mdia, minf, stbl, stsd, entry]`` of the first sound track in ``moov``, or ``None``."""
    for trak in _boxes(buf, moov.payload, moov.end, path):
        if trak.kind != b"trak":
            continue
        mdia = _child(buf, trak, b"mdia", path)
        hdlr = _child(buf, mdia, b"hdlr", path) if mdia else None
        if hdlr is None or buf[hdlr.payload + 8:hdlr.payload + 12] != b"soun":
            continue
        chain = [trak, mdia]
        for kind in (b"minf", b"stbl", b"stsd"):
            box = _child(buf, chain[-1], kind, path)
            if box is None:
                return None
            chain.append(box)
        stsd = chain[-1]
        # stsd is a full box: version/flags (4) and entry_count (4) precede the sample entries.
        entry = next(_boxes(buf, stsd.payload + 8, stsd.end, path), None)
        return chain + [entry] if entry is not None else None
    return None


def _read_moov(path) -> tuple[int, bytes]:
    """File offset and bytes of the ``moov`` box of an MP4/MOV file, found by reading the top-level box
    headers only."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            header = f.read(16)
            box_size, kind = struct.unpack_from(">I4s", header)
            if box_size == 1 and len(header) == 16:
                box_size = struct.unpack_from(">Q", header, 8)[0]
            elif box_size == 0:
                box_size = size - pos
            if box_size < 8 or pos + box_size > size:
                raise ValueError(f"{path}: malformed MP4 box {kind!r} at byte {pos}")
            if kind == b"moov":
                f.seek(pos)
                return pos, f.read(box_size)
            pos += box_size
    raise ValueError(f"{path}: no 'moov' box; not an MP4/MOV file")


def _locate_sa3d(path) -> tuple[SpatialAudioMetadata, int] | None:
    """The ``SA3D`` metadata of the first audio track and the file offset of its box, or ``None``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    offset, buf = _read_moov(path)
    moov = next(_boxes(buf, 0, len(buf), path))
    chain = _audio_chain(buf, moov, path)
    if chain is None:
        return None
    entry = chain[-1]
    sa3d = next((b for b in _boxes(buf, _sample_entry_children(buf, entry), entry.end, path)
                 if b.kind == b"SA3D"), None)
    if sa3d is None:
        return None
    return SpatialAudioMetadata.from_payload(buf[sa3d.payload:sa3d.end], path), offset + sa3d.start


def read_sa3d(path) -> SpatialAudioMetadata | None:
    """The ``SA3D`` metadata of the first audio track of an MP4/MOV file, or ``None`` when absent.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming the file) when the box
    structure is malformed.
    """
    found = _locate_sa3d(path)
    return None if found is None else found[0]


class _MaskedFile(io.RawIOBase):
    """A read-only view of a file in which the bytes at ``offset`` read as ``patch``."""

    def __init__(self, path: str, offset: int, patch: bytes):
        super().__init__()
        self.name = path
        self._file = open(path, "rb")
        self._offset, self._patch = offset, patch

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(pos, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer) -> int:
        pos = self._file.tell()
        count = self._file.readinto(buffer)
        lo, hi = max(pos, self._offset), min(pos + count, self._offset + len(self._patch))
        if lo < hi:
            memoryview(buffer)[lo - pos:hi - pos] = self._patch[lo - self._offset:hi - self._offset]
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def open_media(path):
    """``av.open(path)`` for reading, safe for files whose ``SA3D`` box reorders channels.

    FFmpeg 8's MOV demuxer builds a broken channel layout from an ``SA3D`` box whose channel map is not
    the identity (e.g. the spatial-media RFC's own example ``0, 2, 3, 1`` for a W, X, Y, Z track); using
    it (reading the layout, resampling PCM audio) corrupts the heap and aborts the process. sphsal
    applies the box itself (:func:`sphsal.audio.load_audio`), so FFmpeg reads such files through a view
    in which the box is renamed (``sa3d``), which it skips. Other files (and anything that is not a
    well-formed MP4/MOV) are opened directly.
    """
    import av

    path = os.fspath(path)
    try:
        found = _locate_sa3d(path)
    except (ValueError, OSError):
        found = None  # not an MP4/MOV (or malformed): FFmpeg reports on it itself
    if found is None or found[0].channel_map == tuple(range(found[0].num_channels)):
        return av.open(path)
    return av.open(_MaskedFile(path, found[1] + 4, b"sa3d"))


def _set_size(buf: bytearray, box: _Box, delta: int) -> None:
    if box.header == 16:
        struct.pack_into(">Q", buf, box.start + 8, box.end - box.start + delta)
    else:
        struct.pack_into(">I", buf, box.start, box.end - box.start + delta)


def _shift_chunk_offsets(buf: bytearray, moov: _Box, delta: int, path) -> None:
    """Add ``delta`` to the ``stco``/``co64`` chunk offsets of every track that point past ``moov``
    (media data stored after ``moov`` moves when ``moov`` grows)."""
    for trak in _boxes(buf, moov.payload, moov.end, path):
        if trak.kind != b"trak":
            continue
        box = trak
        for kind in _PATH_TO_SAMPLE_TABLE:
            box = _child(buf, box, kind, path) if box is not None else None
        if box is None:
            continue
        for table in _boxes(buf, box.payload, box.end, path):
            if table.kind in (b"stco", b"co64"):
                fmt = ">I" if table.kind == b"stco" else ">Q"
                width = struct.calcsize(fmt)
                count = _table_count(buf, table, width, path)
                for i in range(count):
                    at = table.payload + 8 + i * width
                    offset = struct.unpack_from(fmt, buf, at)[0]
                    if offset >= moov.end:
                        struct.pack_into(fmt, buf, at, offset + delta)


def _table_count(buf: bytes, table: _Box, width: int, path) -> int:
    """Entry count of a full box holding ``count`` entries of ``width`` bytes (``stco``, ``co64``);
    ``ValueError`` naming ``path`` when the box is too small for its header or the entries it declares."""
    if table.payload + 8 > table.end:
        raise ValueError(f"{path}: corrupt {table.kind.decode('latin-1')!r} box at byte {table.start} "
                         "(too short for its entry count)")
    count = struct.unpack_from(">I", buf, table.payload + 4)[0]
    if table.payload + 8 + count * width > table.end:
        raise ValueError(f"{path}: corrupt {table.kind.decode('latin-1')!r} box at byte {table.start}: it "
                         f"declares {count} chunk offsets but holds room for "
                         f"{(table.end - table.payload - 8) // width}")
    return count


def insert_sa3d(path, metadata: SpatialAudioMetadata, out=None) -> None:
    """Write ``metadata`` as the ``SA3D`` box of the first audio track of an MP4/MOV file.

    Replaces an existing ``SA3D`` box, updates the sizes of the enclosing boxes and the chunk offsets
    of media data stored after ``moov``. Writes ``out`` (default: ``path`` itself)
    atomically; the whole file is read into memory. ``ValueError`` names the file when it has no
    audio track.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    moov = next((b for b in _boxes(buf, 0, len(buf), path) if b.kind == b"moov"), None)
    if moov is None:
        raise ValueError(f"{path}: no 'moov' box; not an MP4/MOV file")
    chain = _audio_chain(buf, moov, path)
    if chain is None:
        raise ValueError(f"{path}: no audio track to attach SA3D metadata to")
    entry = chain[-1]
    old = next((b for b in _boxes(buf, _sample_entry_children(buf, entry), entry.end, path)
                if b.kind == b"SA3D"), None)
    new_box = metadata.to_box()
    cut_start, cut_end = (old.start, old.end) if old is not None else (entry.end, entry.end)
    delta = len(new_box) - (cut_end - cut_start)
    if delta:
        _shift_chunk_offsets(buf, moov, delta, path)
    for box in [moov, *chain]:
        _set_size(buf, box, delta)
    buf[cut_start:cut_end] = new_box
    with atomic_path(out if out is not None else path) as tmp, open(tmp, "wb") as f:
        f.write(buf)
