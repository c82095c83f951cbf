"""One error type for bad input: it names the file, the record and the field."""

from __future__ import annotations


class HiereInputError(ValueError):
    """Bad user input. The CLI prints ``str(error)`` as one line on stderr and exits with code 2.

    >>> str(HiereInputError("dev.json", "document 3 ('Paris')", "vertexSet[1][0].pos", "span [4, 9) ..."))
    "dev.json: document 3 ('Paris'), field vertexSet[1][0].pos: span [4, 9) ..."
    """

    input_index: int | None = None  # set by :func:`hiere.extract.extract` on a skipped text: its position in the input

    def __init__(self, path: str | None, record: str | None, field: str | None, message: str):
        self.path, self.record, self.field, self.message = path, record, field, message
        where = [str(path)] if path else []
        detail = ", ".join(p for p in (record, f"field {field}" if field else None) if p)
        if detail:
            where.append(detail)
        super().__init__(": ".join([*where, message]) if where else message)


class HiereConfigError(ValueError):
    """A configuration key is missing, unknown or has a value of the wrong kind."""
