"""Errors that the CLI turns into one line on stderr and an exit code, never a traceback; and `printable`,
which every line that shows user-given text (file names, manifest cells) goes through."""

# C0 controls, DEL and C1 controls as \xNN, and the bytes of a file name that is not valid UTF-8 (which
# Python decodes to lone surrogates U+DC80..U+DCFF) as the byte they stand for: an ESC or CSI from a file
# name or a manifest never reaches the terminal raw. Everything else, other scripts included, is kept.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})


def printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters (and undecodable bytes) as `\\xNN`."""
    return text.translate(_ESCAPES)


class VggtsError(Exception):
    """A failure the user can act on: bad input file, unreadable checkpoint, failed job (exit 1)."""

    exit_code = 1


class UsageError(VggtsError):
    """The command line asks for something impossible: bad option value, out-of-range frame (exit 2)."""

    exit_code = 2
