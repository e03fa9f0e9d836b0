"""rawtui.download.resume (Content-Range, validators, what a response means for FILE.part) and the part
file of rawtui.download.output (kept, continued, restarted, completed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rawtui.download.output import OutputFile, resolve_output
from rawtui.download.resume import (
    Action,
    ContentRange,
    PartMeta,
    decide,
    meta_path,
    parse_content_range,
    read_meta,
    resume_plan,
    validator_of,
    write_meta,
)
from rawtui.errors import HttpError, OutputError

ETAG = '"65a1-3e8"'
LM = "Wed, 01 Jan 2025 00:00:00 GMT"
META = PartMeta("http://h/f.bin", ETAG, LM, 1000)


@pytest.mark.parametrize(("value", "want"), [
    ("bytes 300-999/1000", ContentRange(300, 999, 1000)),
    ("BYTES 0-0/1", ContentRange(0, 0, 1)),
    ("bytes 5-9/*", ContentRange(5, 9, None)),
    ("bytes */1000", ContentRange(None, None, 1000)),
    (" bytes  300-999/1000 ", ContentRange(300, 999, 1000)),
])
def test_content_range(value: str, want: ContentRange) -> None:
    assert parse_content_range(value) == want


@pytest.mark.parametrize("value", [None, "", "bytes", "bytes 9-5/10", "bytes 5-10/10", "items 0-1/2",
                                   "bytes */*", "bytes -5/10", "bytes 1-2"])
def test_bad_content_range(value: str | None) -> None:
    assert parse_content_range(value) is None


def test_validator_prefers_a_strong_etag() -> None:
    assert validator_of(ETAG, LM) == ETAG
    assert validator_of('W/"weak"', LM) == LM  # If-Range cannot use a weak ETag
    assert validator_of('W/"weak"', None) is None
    assert validator_of(None, None) is None


def common(**kw: object) -> dict[str, object]:
    args: dict[str, object] = {"content_range": None, "content_length": None, "etag": ETAG,
                               "last_modified": LM, "meta": META, "name": "f.bin"}
    args.update(kw)
    return args


def test_206_from_the_offset_appends() -> None:
    d = decide(206, 300, **common(content_range="bytes 300-999/1000", content_length=700))  # type: ignore[arg-type]
    assert d.action is Action.APPEND and d.total == 1000 and "300" in (d.note or "")


@pytest.mark.parametrize(("cr", "words"), [
    ("bytes 0-999/1000", "from 0 where 300"),
    ("bytes 301-999/1000", "from 301 where 300"),
    ("bytes 300-1999/2000", "2,000 bytes"),
    (None, "without a usable Content-Range"),
])
def test_206_that_does_not_continue_the_part_is_an_error(cr: str | None, words: str) -> None:
    with pytest.raises(HttpError, match=words):
        decide(206, 300, **common(content_range=cr))  # type: ignore[arg-type]


def test_200_to_a_range_request_restarts_and_says_why_once() -> None:
    ignored = decide(200, 300, **common(content_length=1000))  # type: ignore[arg-type]
    assert ignored.action is Action.RESTART and ignored.total == 1000
    assert "ignored the range" in (ignored.note or "")
    changed = decide(200, 300, **common(content_length=1200, etag='"other"'))  # type: ignore[arg-type]
    assert changed.action is Action.RESTART and "changed" in (changed.note or "")


def test_416_for_a_complete_part_is_complete() -> None:
    d = decide(416, 1000, **common(content_range="bytes */1000"))  # type: ignore[arg-type]
    assert d.action is Action.COMPLETE and d.total == 1000 and "already complete" in (d.note or "")
    # no Content-Range: the saved size says it
    assert decide(416, 1000, **common()).action is Action.COMPLETE  # type: ignore[arg-type]


def test_416_otherwise_is_an_error() -> None:
    with pytest.raises(HttpError, match="1,000 bytes, f.bin.part has 1,200"):
        decide(416, 1200, **common(content_range="bytes */1000"))  # type: ignore[arg-type]
    with pytest.raises(HttpError, match="does not say"):
        decide(416, 1200, **common(meta=PartMeta("u")))  # type: ignore[arg-type]


def test_a_plain_download_restarts_with_the_content_length() -> None:
    d = decide(200, 0, **common(content_length=5, meta=None))  # type: ignore[arg-type]
    assert d == type(d)(Action.RESTART, 5, None)
    with pytest.raises(HttpError, match="part of the file"):
        decide(206, 0, **common(content_range="bytes 10-19/100"))  # type: ignore[arg-type]


def test_resume_plan() -> None:
    assert resume_plan(META, 300, "http://h/f.bin", "f.bin") == (ETAG, None)
    assert resume_plan(META, 0, "http://h/f.bin", "f.bin") == (None, None)
    for meta, url, words in [(None, "http://h/f.bin", "f.bin.part.meta"),
                             (META, "http://other/f.bin", "downloaded from http://h/f.bin"),
                             (PartMeta("http://h/f.bin"), "http://h/f.bin", "no ETag or Last-Modified")]:
        validator, why = resume_plan(meta, 300, url, "f.bin")
        assert validator is None and why is not None and words in why
    assert resume_plan(META, 2000, "http://h/f.bin", "f.bin")[0] is None  # longer than the file


def test_meta_round_trip_and_junk(tmp_path: Path) -> None:
    target = str(tmp_path / "f.bin")
    write_meta(target, META)
    assert read_meta(target) == META
    assert os.listdir(tmp_path) == ["f.bin.part.meta"]  # no temporary file left
    for junk in ["", "[]", "{", '{"version": 99, "url": "u"}', '{"version": 1}']:
        Path(meta_path(target)).write_text(junk)
        assert read_meta(target) is None


# -- the part file ------------------------------------------------------------------------------------


def test_output_names_as_curl() -> None:
    assert resolve_output("f.bin") == "f.bin"
    assert resolve_output("f.bin", "x.bin") == "x.bin"
    assert resolve_output("f.bin", "-") == "-"
    assert resolve_output("f.bin", "d/") == os.path.join("d/", "f.bin")
    assert resolve_output("f.bin", None, "dir") == os.path.join("dir", "f.bin")
    assert resolve_output("f.bin", "x.bin", "dir") == os.path.join("dir", "x.bin")
    assert resolve_output("f.bin", "/abs/x.bin", "dir") == "/abs/x.bin"


def test_a_directory_as_output_means_the_url_name_inside(tmp_path: Path) -> None:
    assert resolve_output("f.bin", str(tmp_path)) == str(tmp_path / "f.bin")


def start(path: Path, action: Action = Action.RESTART, meta: PartMeta | None = META) -> OutputFile:
    out = OutputFile(str(path))
    out.open()
    if action is not None:
        out.begin_body(action, meta)
    return out


def test_an_interrupted_download_keeps_its_part_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    out = start(path)
    out.write(b"a" * 300)
    assert out.keep() == 300
    assert sorted(os.listdir(tmp_path)) == ["f.bin.part", "f.bin.part.meta"]
    assert (tmp_path / "f.bin.part").read_bytes() == b"a" * 300 and read_meta(str(path)) == META


def test_a_resume_appends_and_hashes_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    first = start(path)
    first.write(b"a" * 300)
    first.keep()
    out = OutputFile(str(path))
    out.open()
    assert out.found == 300 and out.found_meta == META
    out.begin_body(Action.APPEND)
    assert out.size == 300
    out.write(b"b" * 700)
    assert out.commit(1000) == str(path)
    assert path.read_bytes() == b"a" * 300 + b"b" * 700
    assert out.sha256.hexdigest() == hashlib.sha256(b"a" * 300 + b"b" * 700).hexdigest()
    assert os.listdir(tmp_path) == ["f.bin"]  # part and meta gone


def test_a_restart_empties_the_part_and_replaces_the_meta(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    first = start(path)
    first.write(b"old" * 100)
    first.keep()
    out = OutputFile(str(path))
    out.open()
    new = PartMeta("http://h/f.bin", '"new"', None, 4)
    out.begin_body(Action.RESTART, new)
    out.write(b"news")
    assert out.keep() == 4
    assert (tmp_path / "f.bin.part").read_bytes() == b"news" and read_meta(str(path)) == new


def test_a_retry_in_the_same_run_restarts_after_what_was_pending(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    out = start(path)
    out.write(b"x" * 5000)
    out.begin_body(Action.RESTART, META)
    out.write(b"y" * 10)
    out.begin_body(Action.APPEND)  # a second retry that continues: nothing to do
    out.write(b"z" * 10)
    out.commit(20)
    assert path.read_bytes() == b"y" * 10 + b"z" * 10


def test_complete_takes_the_part_as_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    first = start(path)
    first.write(b"q" * 1000)
    first.keep()
    out = OutputFile(str(path))
    out.open()
    out.begin_body(Action.COMPLETE)
    assert out.commit(1000) == str(path)
    assert out.size == 1000 and out.sha256.hexdigest() == hashlib.sha256(b"q" * 1000).hexdigest()


def test_a_wrong_size_is_never_saved(tmp_path: Path) -> None:
    out = start(tmp_path / "f.bin")
    out.write(b"a" * 10)
    with pytest.raises(HttpError, match="10 bytes where the server said 11"):
        out.commit(11)
    assert os.listdir(tmp_path) == []


def test_an_untouched_part_is_kept_as_found_and_an_empty_one_removed(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    first = start(path)
    first.write(b"a" * 10)
    first.keep()
    out = OutputFile(str(path))
    out.open()
    assert out.keep() == 10  # e.g. a 404 on the resume request: the part is left as it was
    assert read_meta(str(path)) == META
    other = OutputFile(str(tmp_path / "g.bin"))
    other.open()
    assert other.keep() == 0 and sorted(os.listdir(tmp_path)) == ["f.bin.part", "f.bin.part.meta"]


def test_a_decoded_body_is_not_kept(tmp_path: Path) -> None:
    out = OutputFile(str(tmp_path / "f.bin"))
    out.open()
    out.resumable = False
    out.begin_body(Action.RESTART, META)
    out.write(b"decoded")
    assert out.keep() == 0 and os.listdir(tmp_path) == []


def test_one_download_at_a_time_per_part_file(tmp_path: Path) -> None:
    out = start(tmp_path / "f.bin")
    other = OutputFile(str(tmp_path / "f.bin"))
    with pytest.raises(OutputError, match="another download is writing"):
        other.open()
    out.discard()
    assert os.listdir(tmp_path) == []


def test_a_symlinked_part_file_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "f.bin.part").symlink_to(victim)
    with pytest.raises(OutputError, match="f.bin.part is a symbolic link"):
        OutputFile(str(tmp_path / "f.bin")).open()
    assert victim.read_bytes() == b"precious"
