"""Files in and out: reading user files into one clear error each, and atomic writes.

Reading: :func:`read_text_file` and :func:`parse_json` turn every way a user file can be unreadable
(missing, a directory, not UTF-8, malformed or too deeply nested JSON) into one
:class:`~hiere.errors.HiereInputError` naming the file.

Writing: a temp file ``.NAME.PID.XXXX.tmp`` in the same folder, then ``os.replace``. The temp file is
removed when the write fails or is interrupted (``hiere`` turns SIGTERM and SIGHUP into an exception,
see :mod:`hiere.cli`); one left behind by a process killed with SIGKILL is removed by the next write of
the same file once its process is gone.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hiere.errors import HiereInputError

# ----------------------------------------------------------------------------------------------- reading


def check_readable_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path; a missing file or a directory is one clear error naming ``what`` was expected."""
    path = Path(path)
    if not path.exists():
        raise HiereInputError(str(path), None, None, f"{what} does not exist")
    if path.is_dir():
        raise HiereInputError(str(path), None, None, f"is a directory, expected a {what}")
    return path


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a user file; a missing file, a directory or non-UTF-8 bytes are one clear error."""
    path = check_readable_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise HiereInputError(str(path), f"line {line}", None, "not UTF-8 text (binary file?)") from None
    except OSError as error:
        raise HiereInputError(str(path), None, None, f"cannot be read ({error.strerror})") from None


def parse_json(text: str, source: str | None, where: str | None = None) -> Any:
    """``json.loads`` whose errors (malformed, nested too deeply) name the source and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if where is None:
            message = f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        else:
            message = f"malformed JSON (column {error.colno}: {error.msg})"
        raise HiereInputError(source, where, None, message) from None
    except RecursionError:
        raise HiereInputError(source, where, None, "JSON nested too deeply to be read") from None


def read_json_file(path: str | Path, what: str = "file") -> Any:
    """A user's JSON file, parsed (:func:`read_text_file` + :func:`parse_json`)."""
    return parse_json(read_text_file(path, what), str(path))


# ----------------------------------------------------------------------------------------------- writing


def check_output_file(path: str | Path) -> None:
    """Raise :class:`HiereInputError` when ``path`` cannot become a file (it is a directory, or a parent is a file)."""
    path = Path(path)
    if path.is_dir():
        raise HiereInputError(str(path), None, None, "is a directory; give the name of the file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise HiereInputError(str(path), None, None, f"cannot be written: {parent} is a file")
            return


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    write_chunks_atomic(path, [data])


def write_chunks_atomic(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write the concatenation of ``chunks`` to ``path`` atomically (temp file + rename), one chunk in memory
    at a time."""
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Remove the temp files of earlier writes of ``path`` whose process no longer runs; return them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


# Characters that JSON allows raw inside a string but that many line readers (Python's
# str.splitlines, JavaScript, some editors) treat as line breaks; escaped so one record is one line.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK_RE = re.compile("[\x85\u2028\u2029]")


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """JSON text with non-ASCII characters as they are, unless a string holds a lone surrogate (from a
    ``\\udcff`` escape in the input): then everything non-ASCII is escaped, which keeps the file valid
    UTF-8 and every string exactly as it was. U+0085, U+2028 and U+2029 are always escaped, so a JSON
    Lines record never spans two lines for a reader that splits on them."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, indent=indent, ensure_ascii=True)
    return _LINE_BREAK_RE.sub(lambda match: _LINE_BREAKS[match.group()], text)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = None) -> None:
    write_text_atomic(path, dumps_json(obj, indent) + "\n")


# ----------------------------------------------------------------------------------------------- streaming JSON

JSON_CHUNK_BYTES = 1 << 20
_JSON_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


def iter_json_list(handle: Any, source: str, offset: int = 0, line: int = 1, inside: bool = False
                   ) -> Iterator[tuple[int, int, int, Any]]:
    """Stream the items of a JSON list from a binary file handle, one at a time (memory does not grow with
    the number of items) -> ``(start byte, end byte, line, item)`` per item, offsets from the handle's start
    plus ``offset`` and lines counted from ``line``.

    ``inside=False``: the handle holds a whole file, ``[item, item, ...]`` (a file holding one value that is
    not a list gives that value as its only item). ``inside=True``: it holds a slice cut between items,
    ``item, item`` (what :func:`iter_json_list` reported for some run of items). Bytes that are not UTF-8
    stay as lone surrogates (``surrogateescape``), so byte offsets are exact; malformed JSON raises
    :class:`HiereInputError` naming the line.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    buffer, at_eof = "", False

    def more() -> bool:
        nonlocal buffer, at_eof
        if at_eof:
            return False
        chunk = handle.read(JSON_CHUNK_BYTES)
        buffer += decoder.decode(chunk, final=not chunk)
        at_eof = not chunk
        return True

    def consume(count: int) -> None:
        nonlocal buffer, offset, line
        offset += len(buffer[:count].encode("utf-8", "surrogateescape"))
        line += buffer.count("\n", 0, count)
        buffer = buffer[count:]

    def skip_whitespace() -> str:
        """The next character that is not whitespace ('' at the end)."""
        while True:
            stripped = len(buffer) - len(buffer.lstrip(_WHITESPACE))
            consume(stripped)
            if buffer or not more():
                return buffer[:1]

    def malformed(message: str, at_line: int | None = None) -> HiereInputError:
        return HiereInputError(source, f"line {at_line or line}", None, f"malformed JSON list: {message}")

    more()
    if not inside:
        if buffer.startswith("\ufeff"):
            consume(1)
        first = skip_whitespace()
        if first != "[":  # one value, not a list: the file's only item
            while more():
                pass
            start, start_line = offset, line
            text = buffer.rstrip(_WHITESPACE)
            value = parse_json(text, source)
            yield start, start + len(text.encode("utf-8", "surrogateescape")), start_line, value
            return
        consume(1)
    expect_comma = False
    while True:
        char = skip_whitespace()
        if char == "":
            if inside:
                return
            raise malformed("the file ends before the list's closing ']'")
        if char == "]" and not inside:
            consume(1)
            if skip_whitespace():
                raise malformed("more data after the list's closing ']'")
            return
        if expect_comma:
            if char != ",":
                raise malformed(f"expected ',' or ']' between items, found {char!r}")
            consume(1)
            char = skip_whitespace()
        while True:
            try:
                value, end = _JSON_DECODER.raw_decode(buffer)
            except json.JSONDecodeError as error:
                if more():
                    continue
                raise malformed(error.msg.lower(), line + error.lineno - 1) from None
            except RecursionError:
                raise malformed("nested too deeply to be read") from None
            if end < len(buffer) or not more():  # a number may go on in the next chunk
                break
        start, start_line = offset, line
        consume(end)
        yield start, offset, start_line, value
        expect_comma = True
