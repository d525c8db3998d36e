"""A small writer of MaxMind DB (.mmdb) files, for test fixtures.

Enough of the format (https://maxmind.github.io/MaxMind-DB/) to build a
City or ASN database the real reader opens: an IPv6 search tree with
24-bit records (IPv4 networks live under ::/96, where readers look for
them), a data section with maps, strings, doubles, unsigned integers,
arrays and booleans, and the metadata. Networks must not overlap.
"""

import ipaddress
import struct
import time

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_RECORD_BITS = 24


def _control(type_num: int, size: int) -> bytes:
    """The control byte(s) of a field: type, then size with its extension."""
    if size < 29:
        first, ext = size, b""
    elif size < 29 + 256:
        first, ext = 29, bytes([size - 29])
    elif size < 285 + 65536:
        first, ext = 30, (size - 285).to_bytes(2, "big")
    else:
        first, ext = 31, (size - 65821).to_bytes(3, "big")
    if type_num <= 7:
        return bytes([(type_num << 5) | first]) + ext
    # Extended types: type 0 in the control byte, then type - 7.
    return bytes([first, type_num - 7]) + ext


class Uint64(int):
    """An integer the format wants as uint64 (readers check the type)."""


class Uint32(int):
    """An integer the format wants as uint32."""


def encode(value) -> bytes:
    """One value in the data-section encoding."""
    if isinstance(value, Uint64):
        raw = int(value).to_bytes((value.bit_length() + 7) // 8, "big")
        return _control(9, len(raw)) + raw
    if isinstance(value, Uint32):
        raw = int(value).to_bytes((value.bit_length() + 7) // 8, "big")
        return _control(6, len(raw)) + raw
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if value < 0:
            raw = struct.pack(">i", value)
            return _control(8, 4) + raw
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        if value < 1 << 16:
            return _control(5, len(raw)) + raw
        if value < 1 << 32:
            return _control(6, len(raw)) + raw
        return _control(9, len(raw)) + raw
    if isinstance(value, dict):
        out = _control(7, len(value))
        for k, v in value.items():
            out += encode(str(k)) + encode(v)
        return out
    if isinstance(value, (list, tuple)):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class Writer:
    """Collects networks and their records, then writes the file."""

    def __init__(self, database_type: str):
        self.database_type = database_type
        self.entries = []

    def insert(self, network: str, record: dict) -> None:
        net = ipaddress.ip_network(network)
        if net.version == 4:
            bits, prefix = int(net.network_address), 96 + net.prefixlen
        else:
            bits, prefix = int(net.network_address), net.prefixlen
        self.entries.append((bits, prefix, record))

    def to_bytes(self) -> bytes:
        data = b""
        # Each node is [left, right]; a child is a node index (int), a
        # data offset (("data", offset)) or None (nothing there).
        nodes = [[None, None]]
        for bits, prefix, record in self.entries:
            offset = len(data)
            data += encode(record)
            node = 0
            for depth in range(prefix):
                bit = (bits >> (127 - depth)) & 1
                if depth == prefix - 1:
                    nodes[node][bit] = ("data", offset)
                    break
                child = nodes[node][bit]
                if child is None:
                    nodes.append([None, None])
                    child = nodes[node][bit] = len(nodes) - 1
                if not isinstance(child, int):
                    raise ValueError(f"network overlaps another: {bits:#x}/{prefix}")
                node = child
        count = len(nodes)

        def value(child) -> int:
            if child is None:
                return count
            if isinstance(child, int):
                return child
            return count + 16 + child[1]

        tree = b"".join(
            value(left).to_bytes(3, "big") + value(right).to_bytes(3, "big")
            for left, right in nodes
        )
        metadata = {
            "binary_format_major_version": 2,
            "binary_format_minor_version": 0,
            "build_epoch": Uint64(int(time.time())),
            "database_type": self.database_type,
            "description": {"en": "trackedge test fixture"},
            "ip_version": 6,
            "languages": ["en"],
            "node_count": Uint32(count),
            "record_size": _RECORD_BITS,
        }
        return tree + bytes(16) + data + _METADATA_MARKER + encode(metadata)

    def write(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())
