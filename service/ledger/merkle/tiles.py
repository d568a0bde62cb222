"""C2SP tlog-tiles: tile paths, their parsing, which tree nodes a tile holds, and hashing up the
nodes of the levels that storage leaves out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from service.ledger.merkle.hashing import NodeId, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63

_TILE_LEVEL = re.compile(r"0|[1-9][0-9]?")
_PARTIAL_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_INDEX_LAST = re.compile(r"[0-9]{3}")
_INDEX_INNER = re.compile(r"x[0-9]{3}")


class TileRef(NamedTuple):
    level: int
    index: int  # type: ignore[assignment]  # the field the spec names, over tuple.index
    width: int  # TILE_WIDTH for a full tile


def _check_tile(level: int, index: int, width: int) -> None:
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level {level} is outside 0..{MAX_TILE_LEVEL}")
    if index < 0:
        raise ValueError(f"tile index {index} is negative")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside 1..{TILE_WIDTH}")


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """`tile/<L>/<N>[.p/<W>]`, with N in 3-digit groups, all but the last prefixed by x."""
    width = TILE_WIDTH if width is None else width
    _check_tile(level, index, width)
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    path = f"tile/{level}/{'/'.join(reversed(groups))}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def parse_tile_index(parts: Sequence[str]) -> int:
    """The N of a tile path from its path elements, e.g. ["x001", "x234", "067"] -> 1234067."""
    if not parts:
        raise ValueError("tile index is missing")
    if not all(_INDEX_INNER.fullmatch(part) for part in parts[:-1]):
        raise ValueError("every tile index element but the last must be x followed by 3 digits")
    if not _INDEX_LAST.fullmatch(parts[-1]):
        raise ValueError("the last tile index element must be exactly 3 digits")
    if len(parts) > 1 and parts[0] == "x000":
        # tile_path never writes a leading zero group; accepting one would give a tile
        # two names.
        raise ValueError("tile index has a leading zero group")
    index = 0
    for part in parts:
        index = index * 1000 + int(part.removeprefix("x"))
    return index


def parse_tile_path(path: str) -> TileRef:
    """Parse `tile/<L>/<N>[.p/<W>]` strictly, as tile_path writes it."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise ValueError(f"not a tile path: {path!r}")
    if not _TILE_LEVEL.fullmatch(parts[1]) or int(parts[1]) > MAX_TILE_LEVEL:
        raise ValueError(f"tile level must be 0..{MAX_TILE_LEVEL} without leading zeros")
    level, index_parts, width = int(parts[1]), parts[2:], TILE_WIDTH
    if len(index_parts) >= 2 and index_parts[-2].endswith(".p"):
        width_text = index_parts[-1]
        # tlog-tiles: W is 1..255, no leading zeros; a full tile never carries .p.
        if not _PARTIAL_WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise ValueError(f"partial tile width must be 1..{TILE_WIDTH - 1}")
        width = int(width_text)
        index_parts = [*index_parts[:-2], index_parts[-2].removesuffix(".p")]
    return TileRef(level, parse_tile_index(index_parts), width)


def tile_node_range(level: int, index: int, width: int) -> tuple[int, int, int]:
    """(node level, first node index, count) of the tree nodes whose hashes a tile holds."""
    _check_tile(level, index, width)
    return level * TILE_HEIGHT, index * TILE_WIDTH, width


def partial_tile_width(level: int, size: int) -> int:
    """Width of the partial tile at `level` for a tree of `size` leaves; 0 when there is none."""
    return (size >> (level * TILE_HEIGHT)) % TILE_WIDTH


def tile_in_tree(level: int, index: int, width: int, size: int) -> bool:
    """Whether every hash of the tile is a complete node of a tree of `size` leaves."""
    node_level, first_node, count = tile_node_range(level, index, width)
    return first_node + count <= size >> node_level


# Storage keeps every fourth level of nodes (0, 4, 8, ...: those C2SP serves as tiles, and the
# levels halfway between). A node of the three levels above a stored level is hashed up, when read,
# from the at most 8 nodes under it there: a sixteenth more tiles than C2SP's alone, for at most 7
# hashes a node read instead of 127.
STORED_TILE_STEP = 4


def nodes_under(node: NodeId) -> tuple[int, int, int]:
    """(level, first index, count) of the nodes of the stored level at or below `node` whose
    hashes it is hashed up from."""
    level, index = node
    height = level % STORED_TILE_STEP
    return level - height, index << height, 1 << height


def hashed_up(wanted: Iterable[NodeId], stored: Mapping[NodeId, bytes]) -> dict[NodeId, bytes]:
    """The wanted nodes that `stored` (nodes of stored levels) gives, each hashed up from the level
    below as often as it takes; a node shared by several wanted ones is hashed once."""
    known = dict(stored)

    def hash_of(node: NodeId) -> bytes | None:
        if (value := known.get(node)) is None and node[0] % STORED_TILE_STEP:
            level, index = node
            left, right = hash_of((level - 1, 2 * index)), hash_of((level - 1, 2 * index + 1))
            if left is not None and right is not None:
                value = known[node] = node_hash(left, right)
        return value

    return {node: value for node in wanted if (value := hash_of(node)) is not None}
