"""Resuming a download: the partial file ``FILE.part``, what it belongs to, and what a response means for it.

An interrupted download keeps what it received in ``FILE.part`` beside the target, and in
``FILE.part.meta`` (JSON, :class:`PartMeta`) which version of which URL those bytes are: the validator
(the strong ETag, else Last-Modified) and the full size. ``-C -`` asks for the rest with
``Range: bytes=N-`` and ``If-Range: <validator>``, so a server whose file changed sends the whole new file
(200) instead of the rest of another version; :func:`decide` reads the answer:

========================================  =====================================================
206, Content-Range starting at N           ``APPEND``: the body continues the part file
206 starting elsewhere / another size      an error (exit 6): the part file is kept as it was
200 (Range ignored, or the file changed)   ``RESTART``: from zero, said once (``Decision.note``)
416 ``bytes */N`` and the part has N       ``COMPLETE``: nothing to fetch, the part is the file
416 otherwise                              an error (exit 6) saying why
========================================  =====================================================

Pure functions and a small JSON file: :func:`decide` is what the retries of the same run use too (see
:class:`rawtui.download.output.OutputFile`, ``begin_body``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from enum import Enum

from rawtui.errors import HttpError

PART_SUFFIX = ".part"
META_SUFFIX = ".part.meta"
META_VERSION = 1
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


def part_path(path: str) -> str:
    return path + PART_SUFFIX


def meta_path(path: str) -> str:
    return path + META_SUFFIX


@dataclass(frozen=True, slots=True)
class ContentRange:
    """``Content-Range: bytes first-last/total``; first and last are None in ``bytes */total`` (416)."""

    first: int | None
    last: int | None
    total: int | None  # None: ``/*``, the server does not know

    @property
    def length(self) -> int | None:
        return None if self.first is None or self.last is None else self.last - self.first + 1


def parse_content_range(value: str | None) -> ContentRange | None:
    """A Content-Range header's byte range, or None when it is missing or not a valid ``bytes`` range."""
    if value is None:
        return None
    m = _CONTENT_RANGE.match(value)
    if m is None:
        return None
    first, last, total = m.groups()
    if first is None and total == "*":
        return None  # "bytes */*" says nothing
    cr = ContentRange(int(first) if first is not None else None, int(last) if last is not None else None,
                      int(total) if total != "*" else None)
    if cr.first is not None and cr.last is not None and cr.last < cr.first:
        return None
    if cr.total is not None and cr.last is not None and cr.last >= cr.total:
        return None
    return cr


def strong_etag(etag: str | None) -> str | None:
    """The ETag if it is a strong one (If-Range may not use a weak ``W/"..."`` one, RFC 9110 13.1.5)."""
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith(("W/", "w/")) or not etag:
        return None
    return etag


def validator_of(etag: str | None, last_modified: str | None) -> str | None:
    """What If-Range sends: the strong ETag, else the Last-Modified date, else None (cannot resume safely)."""
    return strong_etag(etag) or (last_modified.strip() if last_modified and last_modified.strip() else None)


@dataclass(frozen=True, slots=True)
class PartMeta:
    """What the bytes of ``FILE.part`` are: from which URL, which version (validator), the full size."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None  # the whole file's size, when the server said it
    version: int = META_VERSION

    @property
    def validator(self) -> str | None:
        return validator_of(self.etag, self.last_modified)


def read_meta(path: str) -> PartMeta | None:
    """The meta file beside a part file (``path`` is the final file's), or None if missing or unreadable."""
    try:
        with open(meta_path(path), encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("version") != META_VERSION or not isinstance(raw.get("url"), str):
        return None
    total = raw.get("total")
    etag, lm = raw.get("etag"), raw.get("last_modified")
    return PartMeta(raw["url"], etag if isinstance(etag, str) else None, lm if isinstance(lm, str) else None,
                    total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None)


def write_meta(path: str, meta: PartMeta) -> None:
    """Write ``FILE.part.meta`` atomically (a temporary file renamed over it); OSError on failure."""
    target = meta_path(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)  # left by a killed run of the same pid: ours to remove
    except FileNotFoundError:
        pass
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # exclusive: never through a planted link
            json.dump(asdict(meta), f)
            f.write("\n")
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_meta(path: str) -> None:
    try:
        os.unlink(meta_path(path))
    except FileNotFoundError:
        pass


class Action(Enum):
    APPEND = "append"  # the body continues the part file at its end
    RESTART = "restart"  # the body is the whole file: the part file starts again from zero
    COMPLETE = "complete"  # the part file already holds the whole file (416)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    total: int | None  # the whole file's size, when known: the final file is checked against it
    note: str | None = None  # said once to the user (a restart when a resume was asked for, ...)


def decide(
    status: int, offset: int, *, content_range: str | None, content_length: int | None,
    etag: str | None, last_modified: str | None, meta: PartMeta | None, name: str = "the file",
) -> Decision:
    """What to do with a response to a request for ``offset``.. (``offset`` 0: not a resume).

    ``status`` is a final, non-redirect status below 400, or 416; other statuses are for the caller.
    Raises :class:`HttpError` when the answer cannot be used (a range that does not start at ``offset``,
    a 416 for a part file that is not the whole file)."""
    cr = parse_content_range(content_range)
    if offset == 0:
        if status == 206:
            # a range nobody asked for (a -H 'Range: ...'): only the whole file is saved
            if cr is None or cr.first != 0 or (cr.total is not None and cr.last is not None and cr.last + 1 != cr.total):
                raise HttpError("the server sent part of the file (HTTP 206) where the whole file was asked for")
            return Decision(Action.RESTART, cr.total)
        return Decision(Action.RESTART, content_length)
    if status == 206:
        if cr is None or cr.first is None:
            raise HttpError(f"HTTP 206 without a usable Content-Range ({content_range!r}): cannot tell which bytes "
                            "came")
        if cr.first != offset:
            raise HttpError(f"the server sent bytes from {cr.first:,} where {offset:,} were asked for "
                            f"(Content-Range {content_range}): {name}.part is kept as it was")
        if meta is not None and meta.total is not None and cr.total is not None and cr.total != meta.total:
            raise HttpError(f"the server's file is {cr.total:,} bytes, the partial download was of {meta.total:,}: "
                            f"remove {name}.part and download again")
        if content_length is not None and cr.length is not None and content_length != cr.length:
            raise HttpError(f"HTTP 206 with Content-Length {content_length} for a range of {cr.length} bytes")
        return Decision(Action.APPEND, cr.total if cr.total is not None else (meta.total if meta else None),
                        f"resuming {name} at byte {offset:,}"
                        + (f" of {cr.total:,}" if cr.total is not None else ""))
    if status == 416:
        total = cr.total if cr is not None else None
        if total is None and meta is not None:
            total = meta.total
        if total is not None and total == offset:
            return Decision(Action.COMPLETE, total, f"{name} is already complete ({offset:,} bytes): nothing to "
                            "download")
        if total is None:
            raise HttpError(f"HTTP 416 Range Not Satisfiable for byte {offset:,}, and the server does not say "
                            f"the file's size: remove {name}.part and download again")
        raise HttpError(f"HTTP 416: the server's file is {total:,} bytes, {name}.part has {offset:,}: remove it "
                        "and download again")
    # 200 (or another 2xx): the whole file, from zero
    changed = meta is not None and meta.validator is not None and (
        validator_of(etag, last_modified) != meta.validator
        and (strong_etag(etag) or last_modified) is not None
    )
    if changed:
        why = "the file changed on the server since the partial download"
    else:
        why = "the server does not resume (it ignored the range request)"
    return Decision(Action.RESTART, content_length,
                    f"{why}: downloading {name} again from zero (the {offset:,} bytes kept are dropped)")


def resume_plan(meta: PartMeta | None, offset: int, url: str, name: str) -> tuple[str | None, str | None]:
    """Whether ``FILE.part`` (``offset`` bytes, ``meta``) may be continued for ``url``: (validator for
    If-Range, None) when it may, (None, why not) when it must start from zero."""
    if offset <= 0:
        return None, None
    if meta is None:
        return None, (f"{name}.part has no {os.path.basename(meta_path(name))} saying which version it is: "
                      "downloading again from zero")
    if meta.url != url:
        return None, f"{name}.part was downloaded from {meta.url}: downloading again from zero"
    if meta.validator is None:
        return None, (f"the server gave no ETag or Last-Modified for {name}.part, so a changed file could not "
                      "be told apart: downloading again from zero")
    if meta.total is not None and offset > meta.total:
        return None, f"{name}.part is longer than the file it is part of: downloading again from zero"
    return meta.validator, None
