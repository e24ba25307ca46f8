"""Errors of the EXI codec: where it happened and why."""

from __future__ import annotations


class ExiError(ValueError):
    """Base of the codec's errors. ``path`` is the element path (``V2G_Message.Body.X``)."""

    def __init__(self, reason: str, path: list | None = None):
        super().__init__(reason)
        self.reason = reason
        self.path: list = list(path or [])

    @property
    def where(self) -> str:
        text = ""
        for part in self.path:
            if isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else str(part)
        return text

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.path else self.reason


class DecodeError(ExiError):
    """Malformed, truncated or unsupported EXI input. ``bit`` is the offset in the whole input
    (the header byte included) at which decoding failed."""

    def __init__(self, reason: str, bit: int = 0, path: list | None = None):
        super().__init__(reason, path)
        self.bit = bit

    def __str__(self) -> str:
        where = f"bit {self.bit}"
        if self.path:
            where += f" in {self.where}"
        return f"{where}: {self.reason}"


class EncodeError(ExiError):
    """A message that does not fit the schema (or, when encoding unchecked, cannot be represented
    in EXI at all)."""
