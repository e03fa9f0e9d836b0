"""Out-of-order reassembly for the TCP receive path, in stream-offset space.

Offsets are plain integers (bytes since the peer's SYN, never wrapping), so no modulo arithmetic is
needed here: the TCP machine converts sequence numbers at its edge. Data is held as disjoint,
non-adjacent *blocks* ``[start, end, pieces, hole]`` (``pieces``: a list of ``bytes`` whose lengths sum
to ``end - start``; ``hole``: what the caller said about the hole just below the block when that hole
opened, see :meth:`Reassembly.add`), sorted by ``start``. Overlapping or touching data is merged; bytes already held are
never stored twice. The caller bounds what it adds (only data inside the advertised window), so the
memory held is bounded by the receive buffer.

For SACK (RFC 2018 section 4) the most recently touched blocks are remembered, one entry per block
(as Linux keeps its ``selective_acks``: the block a segment lands in moves to the front, the others keep
their order): :meth:`sack_blocks` returns the block holding the latest segment first, then the other most
recently reported ones. A burst of segments growing one block does not push the others out of memory.
"""

from __future__ import annotations

from bisect import bisect_right

_MRU = 8  # how many recently touched blocks to remember for SACK ordering (an offset inside each)


class Reassembly:
    __slots__ = ("_blocks", "_recent", "_starts", "bytes")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._blocks: list[list] = []  # [start, end, pieces, hole info]
        self.bytes = 0  # total bytes held
        self._recent: list[int] = []  # an offset inside each recently touched block, most recent first

    def __len__(self) -> int:
        return len(self._blocks)

    def __bool__(self) -> bool:
        return bool(self._blocks)

    @property
    def first_start(self) -> int | None:
        return self._starts[0] if self._starts else None

    @property
    def last_end(self) -> int | None:
        return self._blocks[-1][1] if self._blocks else None

    def blocks(self) -> list[tuple[int, int]]:
        """All blocks as (start, end), in offset order."""
        return [(b[0], b[1]) for b in self._blocks]

    def add(self, start: int, data: bytes, hole: object = None) -> int:
        """Hold ``data`` at offset ``start``; return how many bytes were new (0: all already held).

        ``hole`` describes the hole this data opens below itself, kept only when the data starts a block
        above every held one (a new hole). The hole below any other block keeps the description it had:
        data landing inside a hole splits it, and both parts keep the older one; a block merged with
        the ones above keeps its own. :meth:`hole_under` reads it back."""
        n = len(data)
        if n == 0:
            return 0
        end = start + n
        starts, blocks = self._starts, self._blocks
        i = bisect_right(starts, start)  # blocks[:i] start at or before `start`
        if i and blocks[i - 1][1] >= start:
            i -= 1
        j = bisect_right(starts, end, i)  # blocks[i:j] overlap or touch [start, end]
        if i == j:
            self._touch(start, start, end)
            starts.insert(i, start)
            blocks.insert(i, [start, end, [data], blocks[i][3] if i < len(blocks) else hole])
            self.bytes += n
            return n
        if j == i + 1:
            b = blocks[i]
            if b[0] <= start:
                r = self._recent
                if not r or not b[0] <= r[0] < b[1]:  # (else: the block touched last, again: it stays first)
                    self._touch(start, b[0], b[1])
                if end <= b[1]:
                    return 0  # entirely held already
                new = end - b[1]
                b[2].append(data[b[1] - start :])  # the common case: extend a block at its end
                b[1] = end
                self.bytes += new
                return new
        lo = min(start, blocks[i][0])
        hi = max(end, blocks[j - 1][1])
        self._touch(start, lo, hi)
        pieces: list[bytes] = []
        pos = lo
        old = 0
        for b in blocks[i:j]:
            if pos < b[0]:
                pieces.append(data[pos - start : b[0] - start])
            pieces.extend(b[2])
            old += b[1] - b[0]
            pos = b[1]
        if pos < end:
            pieces.append(data[pos - start :])
        blocks[i:j] = [[lo, hi, pieces, blocks[i][3]]]
        starts[i:j] = [lo]
        new = (hi - lo) - old
        self.bytes += new
        return new

    def pop_ready(self, offset: int) -> tuple[int, list[bytes]] | None:
        """If the first block starts at or before ``offset``, remove it and return (end, pieces)
        with the pieces trimmed to begin at ``offset``; else None."""
        if not self._starts or self._starts[0] > offset:
            return None
        start, end, pieces, _ = self._blocks.pop(0)
        self._starts.pop(0)
        self.bytes -= end - start
        if end <= offset:
            return end, []
        skip = offset - start
        while skip > 0:
            p = pieces[0]
            if len(p) <= skip:
                pieces.pop(0)
                skip -= len(p)
            else:
                pieces[0] = p[skip:]
                skip = 0
        return end, pieces

    def hole_under(self, start: int, end: int) -> object:
        """The description (see :meth:`add`) of the lowest hole the data ``[start, end)`` reaches into,
        when held data lies above that hole: the data fills (part of) a hole. None when all of it is
        held already, or when it reaches only the space above the highest block."""
        blocks = self._blocks
        k = bisect_right(self._starts, start)  # blocks[:k] start at or before `start`
        if k and blocks[k - 1][1] >= end:
            return None  # all held
        if k == len(blocks):
            return None  # above everything held
        return blocks[k][3]

    def block_holding(self, start: int, end: int) -> tuple[int, int] | None:
        """The held block (start, end) that contains all of ``[start, end)``, if one does."""
        k = bisect_right(self._starts, start) - 1
        if k >= 0 and self._blocks[k][1] >= end:
            return self._blocks[k][0], self._blocks[k][1]
        return None

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` blocks, the one holding the most recently added data first (RFC 2018)."""
        out: list[tuple[int, int]] = []
        starts, blocks = self._starts, self._blocks
        for off in self._recent:
            k = bisect_right(starts, off) - 1
            if k < 0:
                continue
            b = blocks[k]
            if off >= b[1]:
                continue
            blk = (b[0], b[1])
            if blk not in out:
                out.append(blk)
                if len(out) >= limit:
                    return out
        # Not enough remembered: fill with the highest blocks (most likely the newest).
        for b in reversed(blocks):
            if len(out) >= limit:
                break
            blk = (b[0], b[1])
            if blk not in out:
                out.append(blk)
        return out

    def _touch(self, off: int, lo: int, hi: int) -> None:
        """Data at ``off`` landed in the block ``[lo, hi)`` (as it is once the data is added): that block
        becomes the most recent; entries for it (or for blocks it swallows) are dropped, the others keep
        their order (RFC 2018 section 4: the other blocks follow in the order they were last reported)."""
        r = [e for e in self._recent if not lo <= e < hi]
        r.insert(0, off)
        del r[_MRU:]
        self._recent = r
