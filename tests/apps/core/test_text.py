"""apps.core.text: strict UTF-8 lines, or an error naming file, line and byte."""

import pytest

from apps.core.errors import UserError
from apps.core.text import utf8_lines


def test_lines_are_numbered_from_one_and_keep_their_text(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("première\r\n\nzweite Zeile".encode())
    assert list(utf8_lines(str(path))) == [(1, "première\r\n"), (2, "\n"), (3, "zweite Zeile")]


def test_a_byte_order_mark_is_no_character_of_the_first_line(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffGo.\tVa !\n\ufeffx\n".encode())
    assert list(utf8_lines(str(path))) == [(1, "Go.\tVa !\n"), (2, "\ufeffx\n")]


def test_a_line_not_in_utf8_is_named_with_its_byte_and_column(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine\nk\xf6nig\n")
    with pytest.raises(UserError, match=r"latin1.txt:2: not UTF-8 text \(byte 0xf6 at column 2\)"):
        list(utf8_lines(str(path)))


def test_a_binary_file_says_what_was_expected(tmp_path):
    path = tmp_path / "corpus.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00")
    with pytest.raises(UserError, match=r"corpus.gz: a binary file, not text \(expected words"):
        list(utf8_lines(str(path), "words"))


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match=r"folder: cannot read \(Is a directory\)"):
        list(utf8_lines(str(tmp_path / "folder")))
