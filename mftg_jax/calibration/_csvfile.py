"""CSV records with the file line each starts on, and one-line errors for broken files."""

import csv

# A field longer than this is not a timestamp or a price: a quote left open, or not a
# price file at all.
_MAX_FIELD = 200


def csv_records(path: str) -> list[tuple[int, list[str]]]:
    """`(first file line, fields)` of every CSV record; `ValueError` naming file and line
    for text that is not UTF-8, a quote left open, or a field too long to be a value."""
    out = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            start = 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    raise ValueError(
                        f"{path}, line {start}: not a readable CSV record ({e}); a quote left open?"
                    ) from None
                for col, x in enumerate(row, start=1):
                    if "\n" in x or "\r" in x:
                        raise ValueError(
                            f"{path}, line {start}, column {col}: a quoted field runs over "
                            f"{reader.line_num - start + 1} lines (a quote left open?)"
                        )
                    if len(x) > _MAX_FIELD:
                        raise ValueError(
                            f"{path}, line {start}, column {col}: a field of {len(x)} "
                            f"characters (at most {_MAX_FIELD}: a quote left open, or not a "
                            "price file?)"
                        )
                out.append((start, row))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not a UTF-8 text file ({e.reason} at byte {e.start}); save it as UTF-8 CSV"
        ) from None
    return out
