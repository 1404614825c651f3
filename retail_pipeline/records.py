"""The three input row formats, and turning chunks of lines into typed rows or rejections.

Every line is either loaded or rejected with a reason (docs/decisions.md). The common case
is handled in bulk: one anchored regular expression per format recognises lines that are
certainly well formed, and Arrow's CSV reader converts all of those at C speed. The few
lines the expression does not accept go through :func:`parse_line`, the plain-Python,
rule-by-rule reading of the contract, which either parses them (a well-formed line the
fast path is too strict for, e.g. a property value containing a lone ``\\r``) or says why
the line is rejected. A line longer than ``MAX_LINE_BYTES`` is rejected first, judged from the
chunk's offsets alone: it is never matched, decoded or copied (only its first
``RAW_PREFIX_BYTES`` go to ``rejected_rows.raw``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .lines import MAX_LINE_BYTES, LineChunk, count_byte, line_offsets, lines_bytes, strip_line_end

INT_PATTERN = r"-?[0-9]{1,18}(?:\.0+)?"
RAW_PREFIX_BYTES = 1024  # what rejected_rows.raw keeps of a line too long to read
_INT_RE = re.compile(INT_PATTERN + r"\Z")

EVENT_TYPES = ("view", "addtocart", "transaction")
EVENT_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}

# Column kinds: how one field is checked and converted.
INT = "int"  # required integer
OPT_INT = "opt_int"  # empty (NULL) or integer
EVENT = "event"  # one of EVENT_TYPES, stored as its int8 code
TEXT = "text"  # anything without a comma
NAME = "name"  # text from a small vocabulary (property names): dictionary-encoded as parsed

NAME_TYPE = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class RowFormat:
    name: str
    header: str
    kinds: tuple[str, ...]
    fast_pattern: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.header.split(","))

    @property
    def arrow_schema(self) -> pa.Schema:
        types = {INT: pa.int64(), OPT_INT: pa.int64(), EVENT: pa.int8(), TEXT: pa.string(), NAME: NAME_TYPE}
        fields = [pa.field("line", pa.int64())]
        fields += [pa.field(c, types[k]) for c, k in zip(self.columns, self.kinds)]
        return pa.schema(fields)


def _fast(*fields: str) -> str:
    return "^" + ",".join(fields) + r"\r?\n$"


_I = INT_PATTERN
_T = r"[^,\r\n]*"

EVENTS = RowFormat(
    name="events",
    header="timestamp,visitorid,event,itemid,transactionid",
    kinds=(INT, INT, EVENT, INT, OPT_INT),
    fast_pattern=_fast(_I, _I, f"(?:(?:view|addtocart),{_I},(?:{_I})?|transaction,{_I},{_I})"),
)
ITEM_PROPERTIES = RowFormat(
    name="item_properties",
    header="timestamp,itemid,property,value",
    kinds=(INT, INT, NAME, TEXT),
    fast_pattern=_fast(_I, _I, _T, _T),
)
CATEGORY_TREE = RowFormat(
    name="category_tree",
    header="categoryid,parentid",
    kinds=(INT, OPT_INT),
    fast_pattern=_fast(_I, f"(?:{_I})?"),
)


def parse_int(text: str) -> int | None:
    """The integer a field holds under the contract's definition, or None if it holds none."""
    if not _INT_RE.match(text):
        return None
    return int(text.split(".", 1)[0])


def parse_line(fmt: RowFormat, text: str) -> tuple | str:
    """Read one line (without its line end) the slow, literal way.

    Returns the tuple of converted values, or the rejection reason.
    """
    if text == "":
        return "blank line"
    fields = text.split(",")
    if len(fields) != len(fmt.kinds):
        return f"wrong number of fields: expected {len(fmt.kinds)}, got {len(fields)}"
    values: list = []
    for column, kind, field in zip(fmt.columns, fmt.kinds, fields):
        if kind in (TEXT, NAME):
            values.append(field)
        elif kind == EVENT:
            if field not in EVENT_CODES:
                return "unknown event type"
            values.append(EVENT_CODES[field])
        elif kind == OPT_INT and field == "":
            if column == "transactionid" and values[2] == EVENT_CODES["transaction"]:
                return "transaction without transactionid"
            values.append(None)
        else:
            number = parse_int(field)
            if number is None:
                return f"{column} is not an integer"
            values.append(number)
    return tuple(values)


@dataclass
class ParsedChunk:
    rows: pa.Table  # arrow_schema of the format, in line order
    rejected: list[tuple[int, str, str]]  # (line_number, reason, raw)


def _blank_as_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _to_int64(column: pa.Array, *, optional: bool) -> pa.Array:
    if pa.types.is_integer(column.type):
        return column
    if optional:
        column = _blank_as_null(column)
    if pc.any(pc.match_substring(column, ".")).as_py():
        column = pc.replace_substring_regex(column, r"\.0+$", "")
    return pc.cast(column, pa.int64())


def _convert(fmt: RowFormat, raw_columns: list[pa.Array], line_numbers: np.ndarray) -> pa.Table:
    arrays = [pa.array(line_numbers, pa.int64())]
    for kind, column in zip(fmt.kinds, raw_columns):
        if kind in (INT, OPT_INT):
            arrays.append(_to_int64(column, optional=kind == OPT_INT))
        elif kind == EVENT:
            codes = pc.index_in(column.dictionary, value_set=pa.array(EVENT_TYPES))
            remap = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int8)
            arrays.append(pa.array(remap[column.indices.to_numpy()], pa.int8()))
        else:
            arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=fmt.arrow_schema)


def _read_csv_buffer(
    fmt: RowFormat, buffer: pa.Buffer, *, typed_ints: bool = True, fall_back: bool = True,
    typed_optional_ints: bool | None = None,
) -> list[pa.Array]:
    """Split well-formed lines into columns with Arrow's CSV reader.

    Integer columns are parsed as int64 directly; a chunk where one is written with a zero
    fraction (``14418.0``), which Arrow does not parse as an integer, is re-read with integers
    as text and converted by :func:`_to_int64`.
    """
    names = list(fmt.columns)
    typed_optional_ints = typed_ints if typed_optional_ints is None else typed_optional_ints
    types = {INT: pa.int64() if typed_ints else pa.string(), OPT_INT: pa.int64() if typed_optional_ints else pa.string(),
             EVENT: NAME_TYPE, TEXT: pa.string(), NAME: NAME_TYPE}
    try:
        table = pacsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(
                delimiter=",", quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: types[k] for n, k in zip(names, fmt.kinds)},
                null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False,
            ),
        )
    except pa.ArrowInvalid:
        if not typed_ints or not fall_back:
            raise
        return _read_csv_buffer(fmt, buffer, typed_ints=False)
    return [table.column(n).combine_chunks() for n in names]


def _too_long(lines: pa.LargeBinaryArray) -> np.ndarray:
    """Boolean mask of the lines longer than ``MAX_LINE_BYTES`` without their line end.

    Judged from the offsets alone: a long line is never copied or decoded.
    """
    offsets = line_offsets(lines)
    content = np.diff(offsets) - 1  # without the "\n" every element ends with
    mask = content > MAX_LINE_BYTES
    if mask.any():
        data = lines.buffers()[2]
        for index in np.flatnonzero(content == MAX_LINE_BYTES + 1):  # a "\r" before the "\n" is not counted
            if data[int(offsets[index + 1]) - 2] == 13:
                mask[index] = False
    return mask


def _prefix(lines: pa.LargeBinaryArray, index: int) -> str:
    """The first ``RAW_PREFIX_BYTES`` of a line, as text (U+FFFD for what is not UTF-8)."""
    offsets = line_offsets(lines)
    start = int(offsets[index])
    size = min(RAW_PREFIX_BYTES, int(offsets[index + 1]) - start)
    return lines.buffers()[2].slice(start, size).to_pybytes().decode("utf-8", "replace")


def _undecodable(lines: pa.LargeBinaryArray, skip: np.ndarray) -> np.ndarray:
    """Boolean mask of the lines that are not valid UTF-8 (lines marked in ``skip`` are not looked at)."""
    mask = np.zeros(len(lines), dtype=bool)
    looked_at = np.flatnonzero(~skip)
    subset = lines if len(looked_at) == len(lines) else lines.take(pa.array(looked_at))
    try:
        subset.cast(pa.large_string())
        return mask
    except pa.ArrowInvalid:
        for i, line in zip(looked_at, subset.to_pylist()):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                mask[i] = True
        return mask


_POWERS_OF_TEN = np.array([10**k for k in range(1, 19)], dtype=np.int64)
_INT_LIMIT = 10**18  # 18 digits at most


def _canonical_int_lengths(values: np.ndarray) -> np.ndarray | None:
    """The length of each integer written the plain way (``-`` and digits, no leading zero),
    or None if one has more than 18 digits."""
    if len(values) and (int(values.min()) <= -_INT_LIMIT or int(values.max()) >= _INT_LIMIT):
        return None
    magnitude = np.abs(values)
    lengths = (values < 0).astype(np.int64) + 1
    for power in _POWERS_OF_TEN:
        lengths += magnitude >= power
    return lengths


def _text_lengths(column: pa.Array) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        lengths = pc.binary_length(column.dictionary).to_numpy(zero_copy_only=False)
        return lengths[column.indices.to_numpy(zero_copy_only=False)] if len(column) else np.zeros(0, np.int64)
    return pc.binary_length(column).to_numpy(zero_copy_only=False)


def _parse_well_formed_chunk(fmt: RowFormat, chunk: LineChunk) -> ParsedChunk | None:
    """The chunk's rows when every line is well formed and written the plain way, else None.

    Arrow's CSV reader converts the whole chunk, lines never split out; the result is taken
    only if it provably reads every line as the rules do: as many rows as lines, valid UTF-8,
    required fields present, known event types, and the byte count adds up exactly. Each
    integer's plain decimal is never longer than its text, so an exact total means each was
    written plainly (no ``+`` or leading zero for the careful path to handle) and no ``\\r``
    sat anywhere but before a ``\\n``. A column with a zero fraction somewhere (``2727.0``) is
    read as text instead, each value checked against the rules' integer pattern and counted at
    its exact length. Lines longer than ``MAX_LINE_BYTES`` also go the careful way. On any doubt
    the chunk goes through :func:`parse_chunk_by_line`.
    """
    data = chunk.data
    if chunk.count == 0:
        return None
    try:
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, data.size])), data])
        whole.cast(pa.large_string())  # raises unless all of it is UTF-8
        columns = _read_csv_typed_where_plain(fmt, data)
    except (pa.ArrowInvalid, OverflowError):
        return None
    if len(columns[0]) != chunk.count:
        return None
    line_lengths = np.full(chunk.count, len(fmt.kinds) - 1, dtype=np.int64)  # the commas
    for i, (column_name, kind, column) in enumerate(zip(fmt.columns, fmt.kinds, columns)):
        if kind in (INT, OPT_INT):
            if pa.types.is_integer(column.type):
                lengths = _plain_int_lengths(column, required=kind == INT)
            else:
                lengths, columns[i] = _checked_int_text(column, optional=kind == OPT_INT)
            if lengths is None:
                return None
            if column_name == "transactionid":
                is_transaction = pc.equal(columns[fmt.kinds.index(EVENT)], "transaction")
                if pc.any(pc.and_(is_transaction, columns[i].is_null())).as_py():
                    return None
        elif kind == EVENT:
            if not set(column.dictionary.to_pylist()) <= set(EVENT_TYPES):
                return None
            lengths = _text_lengths(column)
        else:
            lengths = _text_lengths(column)
        line_lengths += lengths
    carriage_returns = count_byte(np.frombuffer(data, dtype=np.uint8), 13)
    if int(line_lengths.sum()) + chunk.count + carriage_returns != data.size:
        return None
    if int(line_lengths.max()) > MAX_LINE_BYTES:
        return None
    line_numbers = np.arange(chunk.first_line, chunk.first_line + chunk.count, dtype=np.int64)
    return ParsedChunk(_convert(fmt, columns, line_numbers), [])


def _plain_int_lengths(column: pa.Array, *, required: bool) -> np.ndarray | None:
    """Each value's length written the plain way (0 for a blank), or None if a required one is
    blank or one is too long to be an integer of the rules."""
    if required and column.null_count:
        return None
    values = column.fill_null(0).to_numpy(zero_copy_only=False) if column.null_count else column.to_numpy()
    lengths = _canonical_int_lengths(values)
    if lengths is not None and column.null_count:
        lengths[column.is_null().to_numpy(zero_copy_only=False)] = 0
    return lengths


def _read_csv_typed_where_plain(fmt: RowFormat, data) -> list[pa.Array]:
    """The chunk's columns, integer columns as int64; where Arrow cannot read one as integers
    (a zero fraction, ``2727.0``, in some line), that column stays text, for
    :func:`_checked_int_text`, so one such value does not send a whole chunk the careful way."""
    try:  # optional integers (transactionid) as text at once: mostly blank, and where the fractions turn up
        columns = _read_csv_buffer(fmt, data, typed_ints=True, typed_optional_ints=False, fall_back=False)
    except pa.ArrowInvalid:
        columns = _read_csv_buffer(fmt, data, typed_ints=False, fall_back=False)
    return [_int64_or_text(column) if kind in (INT, OPT_INT) and not pa.types.is_integer(column.type) else column
            for kind, column in zip(fmt.kinds, columns)]


def _int64_or_text(column: pa.Array) -> pa.Array:
    try:
        return pc.cast(_blank_as_null(column), pa.int64())  # no zero fractions: those stay text
    except pa.ArrowInvalid:
        return column


def _checked_int_text(column: pa.Array, *, optional: bool) -> tuple[np.ndarray | None, pa.Array | None]:
    """(each value's length in bytes, the values as int64) of an integer column read as text,
    or (None, None) unless every value is an integer as the rules write one (blank if optional)."""
    plain = pc.match_substring_regex(column, "^" + INT_PATTERN + "$")
    if optional:
        plain = pc.or_(plain, pc.equal(column, ""))
    if not pc.all(plain).as_py():
        return None, None
    return _text_lengths(column), _to_int64(column, optional=optional)


def parse_chunk(fmt: RowFormat, chunk: LineChunk) -> ParsedChunk:
    """Convert a chunk of lines: typed rows for the readable ones, reasons for the others."""
    whole = _parse_well_formed_chunk(fmt, chunk)
    return whole if whole is not None else parse_chunk_by_line(fmt, chunk)


def parse_chunk_by_line(fmt: RowFormat, chunk: LineChunk) -> ParsedChunk:
    """:func:`parse_chunk` the careful way: lines split out, each matched or read literally."""
    lines = chunk.lines
    n = len(lines)
    too_long = _too_long(lines)
    undecodable = _undecodable(lines, too_long)
    if too_long.any():
        fast_ok = np.zeros(n, dtype=bool)
        short = np.flatnonzero(~too_long)
        fast_ok[short] = pc.match_substring_regex(lines.take(pa.array(short)), fmt.fast_pattern).to_numpy(
            zero_copy_only=False)
    else:
        fast_ok = pc.match_substring_regex(lines, fmt.fast_pattern).to_numpy(zero_copy_only=False)
    fast_ok &= ~undecodable
    line_numbers = np.arange(chunk.first_line, chunk.first_line + n, dtype=np.int64)

    if fast_ok.all():
        accepted = lines
    else:
        accepted = lines.filter(pa.array(fast_ok))
    if len(accepted):
        rows = _convert(fmt, _read_csv_buffer(fmt, lines_bytes(accepted)), line_numbers[fast_ok])
    else:
        rows = fmt.arrow_schema.empty_table()

    rejected: list[tuple[int, str, str]] = []
    slow_rows: list[tuple] = []
    for index in np.flatnonzero(~fast_ok):
        number = int(line_numbers[index])
        if too_long[index]:
            rejected.append((number, "line too long", _prefix(lines, int(index))))
            continue
        raw_bytes = strip_line_end(lines[int(index)].as_py())
        if undecodable[index]:
            rejected.append((number, "undecodable bytes", raw_bytes.decode("utf-8", "replace")))
            continue
        text = raw_bytes.decode("utf-8")
        result = parse_line(fmt, text)
        if isinstance(result, str):
            rejected.append((number, result, text))
        else:
            slow_rows.append((number, *result))
    if slow_rows:
        extra = pa.Table.from_pylist(
            [dict(zip(fmt.arrow_schema.names, row)) for row in slow_rows], schema=fmt.arrow_schema
        )
        rows = pa.concat_tables([rows, extra]).sort_by("line")
    return ParsedChunk(rows, rejected)
