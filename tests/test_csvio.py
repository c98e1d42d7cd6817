"""One CSV reader for every command: clear errors that name the file, Excel's BOM accepted."""
from __future__ import annotations

import pytest

from facelm.csvio import read_csv
from facelm.errors import InputFormatError


def test_reads_header_and_rows_and_drops_a_bom(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_bytes("\ufefffile_a,file_b,note\na.jpg,b.jpg,x\n".encode("utf-8"))
    header, rows = read_csv(p, ("file_a", "file_b"))
    assert header == ["file_a", "file_b", "note"]
    assert rows == [{"file_a": "a.jpg", "file_b": "b.jpg", "note": "x"}]


@pytest.mark.parametrize("content, expect", [
    (None, "no such file"),
    (b"a,b\nx,y\n", "missing column(s) file_a, file_b; found a, b"),
    (b"", "found no header"),
    (b"file_a,file_b\n\xff\xfe\x00bad", "cannot read the CSV"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, expect):
    p = tmp_path / "pairs.csv"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(InputFormatError) as e:
        read_csv(p, ("file_a", "file_b"), hint="see the docs")
    assert expect in str(e.value) and e.value.item == str(p) and e.value.hint == "see the docs"
