"""Reading text files strictly as UTF-8, for every app that reads text.

A corpus, a vectors file or a file of sentences read with the wrong encoding
would train or answer on mojibake without a word; here a binary file (a NUL
byte in its first 4 KiB: compressed, word2vec's binary format, a PDF) or a
line that is not UTF-8 is a UserError naming the file, the line and the byte.
"""

from apps.core.errors import UserError

CONVERT = "convert the file to UTF-8, e.g. with `iconv -f latin1 -t utf-8`"


def utf8_lines(path, expected="UTF-8 text"):
    """(line number from 1, line with its newline) of the text file `path`.

    `expected` says what the file should have been, in the error for a
    binary file. An unreadable file is a UserError too.
    """
    try:
        with open(path, "rb") as f:
            if b"\0" in f.peek(4096)[:4096]:
                raise UserError(f"{path}: a binary file, not text (expected {expected}; "
                                "decompress or convert it first)")
            for number, raw in enumerate(f, 1):
                yield number, decode_line(raw, path, number)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def decode_line(raw, path, number):
    """`raw` bytes as UTF-8, or a UserError naming path:number and the first bad byte.

    The byte-order mark some editors put at the start of a UTF-8 file is no
    character of the first line."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}:{number}: not UTF-8 text (byte {raw[e.start]:#04x} at column "
                        f"{e.start + 1}); {CONVERT}") from None
