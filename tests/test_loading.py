"""Reading input files: line rules, rejection reasons, and the bulk path agreeing with the literal one."""

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_hostile_input import literal_reading

from retail_pipeline.errors import InputError
from retail_pipeline.lines import MAX_LINE_BYTES
from retail_pipeline.load import load_file
from retail_pipeline.records import CATEGORY_TREE, EVENTS, ITEM_PROPERTIES, parse_int, parse_line

EVENTS_HEADER = EVENTS.header + "\n"


def write(path, text: bytes | str):
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rows_by_line(loaded):
    table = loaded.rows.to_pylist()
    return {r.pop("line"): tuple(r.values()) for r in table}


def rejected_by_line(loaded):
    return {r["line_number"]: (r["reason"], r["raw"]) for r in loaded.rejected.to_pylist()}


@pytest.mark.parametrize(
    "text, value",
    [("0", 0), ("007", 7), ("-0", 0), ("14418.0", 14418), ("14418.000", 14418), ("-5.0", -5),
     ("1" * 18, int("1" * 18)), ("1" * 19, None), ("+5", None), (" 5", None), ("5 ", None), ("1e3", None),
     ("14418.5", None), ("14418.", None), (".0", None), ("", None), ("-", None), ("٣", None)],
)
def test_integer_rule(text, value):
    assert parse_int(text) == value


def test_each_rejection_reason_with_its_line_number(tmp_path):
    lines = [
        "1433000000000,1,view,10,",  # 2 ok
        "",  # 3 blank
        "1433000000000,1,view,10",  # 4 four fields
        "abc,1,view,10,",  # 5 timestamp
        "1433000000000,x,view,10,",  # 6 visitorid
        "1433000000000,1,View,10,",  # 7 event type (case-sensitive)
        "1433000000000,1,view,1.5,",  # 8 itemid
        "1433000000000,1,transaction,10,",  # 9 transaction without id
        "1433000000000,1,view,10,abc",  # 10 non-integer transactionid on a view
        "1433000000000,1,view,10,77",  # 11 integer transactionid on a view: kept
        "1433000000000,1,transaction,10,14418.0",  # 12 ok, .0 id
        "x,y,Z,1,2",  # 13 stops at the first fault: timestamp
    ]
    loaded = load_file(EVENTS, write(tmp_path / "events.csv", EVENTS_HEADER + "\n".join(lines) + "\n"))
    assert loaded.data_lines == len(lines)
    assert rejected_by_line(loaded) == {
        3: ("blank line", ""),
        4: ("wrong number of fields: expected 5, got 4", lines[2]),
        5: ("timestamp is not an integer", lines[3]),
        6: ("visitorid is not an integer", lines[4]),
        7: ("unknown event type", lines[5]),
        8: ("itemid is not an integer", lines[6]),
        9: ("transaction without transactionid", lines[7]),
        10: ("transactionid is not an integer", lines[8]),
        13: ("timestamp is not an integer", lines[11]),
    }
    assert rows_by_line(loaded) == {
        2: (1433000000000, 1, 0, 10, None),
        11: (1433000000000, 1, 0, 10, 77),
        12: (1433000000000, 1, 2, 10, 14418),
    }
    assert {r["source_file"] for r in loaded.rejected.to_pylist()} == {"events.csv"}


def test_crlf_and_bom_read_like_lf(tmp_path):
    body = ["1433000000000,1,view,10,", "1433000000001,2,transaction,11,5", ""]
    lf = load_file(EVENTS, write(tmp_path / "lf.csv", EVENTS_HEADER + "\n".join(body) + "\n"))
    crlf = load_file(
        EVENTS, write(tmp_path / "crlf.csv", b"\xef\xbb\xbf" + ("\r\n".join([EVENTS.header, *body]) + "\r\n").encode())
    )
    assert rows_by_line(lf) == rows_by_line(crlf)
    assert rejected_by_line(lf) == rejected_by_line(crlf) == {4: ("blank line", "")}


def test_last_line_without_newline_is_read(tmp_path):
    loaded = load_file(EVENTS, write(tmp_path / "e.csv", EVENTS_HEADER + "1,1,view,1,\n2,2,view,2,"))
    assert sorted(rows_by_line(loaded)) == [2, 3]


def test_header_only_file_has_no_rows(tmp_path):
    loaded = load_file(EVENTS, write(tmp_path / "e.csv", EVENTS_HEADER))
    assert loaded.data_lines == 0 and loaded.rows.num_rows == 0


@pytest.mark.parametrize(
    "content, message",
    [(b"", "file is empty"), (b"ts,visitorid,event,itemid,transactionid\n1,1,view,1,\n", "wrong header"),
     (b"timestamp;visitorid;event;itemid;transactionid\n", "wrong header"),
     (b"timestamp,visitorid,event,itemid\n", "wrong header")],
)
def test_unusable_file_names_itself(tmp_path, content, message):
    path = write(tmp_path / "events.csv", content)
    with pytest.raises(InputError) as error:
        load_file(EVENTS, path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_gzip_input_reads_like_plain(tmp_path):
    text = EVENTS_HEADER + "1,1,view,1,\nbad\n3,3,transaction,3,3\n"
    plain = load_file(EVENTS, write(tmp_path / "events.csv", text))
    packed = tmp_path / "events.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    zipped = load_file(EVENTS, packed)
    assert rows_by_line(plain) == rows_by_line(zipped)
    assert rejected_by_line(plain) == rejected_by_line(zipped)
    assert zipped.source_file == "events.csv.gz"


def test_truncated_gzip_stops_with_the_file_name(tmp_path):
    packed = tmp_path / "events.csv.gz"
    packed.write_bytes(gzip.compress((EVENTS_HEADER + "1,1,view,1,\n" * 5000).encode())[:-30])
    with pytest.raises(InputError, match="events.csv.gz"):
        load_file(EVENTS, packed)


def test_undecodable_line_is_rejected_and_the_rest_loaded(tmp_path):
    content = (ITEM_PROPERTIES.header + "\n").encode() + b"1,2,888,caf\xe9\n1,2,888,caf\xc3\xa9\n"
    loaded = load_file(ITEM_PROPERTIES, write(tmp_path / "p.csv", content))
    assert rejected_by_line(loaded) == {2: ("undecodable bytes", "caf\ufffd".join(["1,2,888,", ""]))}
    assert rows_by_line(loaded) == {3: (1, 2, "888", "café")}


def test_property_value_with_a_lone_carriage_return_is_text(tmp_path):
    content = ITEM_PROPERTIES.header + "\n1,2,888,a\rb\n1,3,888,c\n"
    loaded = load_file(ITEM_PROPERTIES, write(tmp_path / "p.csv", content))
    assert rows_by_line(loaded) == {2: (1, 2, "888", "a\rb"), 3: (1, 3, "888", "c")}


def test_chunk_boundaries_do_not_change_anything(tmp_path):
    lines = [f"{1433000000000 + i},{i % 7},{['view', 'addtocart', 'transaction'][i % 3]},{i},{i if i % 3 == 2 else ''}"
             for i in range(3000)]
    lines[1234] = "broken"
    path = write(tmp_path / "events.csv", EVENTS_HEADER + "\n".join(lines))
    whole = load_file(EVENTS, path)
    small = load_file(EVENTS, path, chunk_bytes=97)
    assert rows_by_line(whole) == rows_by_line(small)
    assert rejected_by_line(whole) == rejected_by_line(small) == {
        1236: ("wrong number of fields: expected 5, got 1", "broken")
    }


# --- The bulk path (regex + Arrow CSV) against the literal, line-by-line reading -------------

FIELD_PIECES = st.sampled_from(
    ["0", "7", "-", ".", "0", "12", "14418", ".0", ".00", "1" * 18, "1" * 19, "view", "addtocart", "transaction",
     "View", "", " ", "\r", "\t", "x", "é", "n1338.000", "+", "e", "\x00"]
)
FIELD = st.lists(FIELD_PIECES, max_size=4).map("".join)
LINE = st.one_of(
    st.lists(FIELD, min_size=1, max_size=6).map(",".join),
    st.tuples(st.sampled_from(["1433000000000", "1.0", "x"]), st.sampled_from(["5", "-0", "05"]),
              st.sampled_from(["view", "addtocart", "transaction", "View"]), st.sampled_from(["9", "9.0", ""]),
              st.sampled_from(["", "3", "3.0", "a"])).map(",".join),
)
ENDING = st.sampled_from(["\n", "\r\n"])


@pytest.mark.parametrize("fmt", [EVENTS, ITEM_PROPERTIES, CATEGORY_TREE], ids=lambda f: f.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.tuples(LINE, ENDING), max_size=25), raw_bytes=st.booleans(), chunk=st.integers(16, 200))
def test_every_line_is_loaded_or_rejected_exactly_as_the_literal_rules_say(tmp_path, fmt, body, raw_bytes, chunk):
    data = (fmt.header + "\n" + "".join(line + end for line, end in body)).encode()
    if raw_bytes and body:
        data = data + b"1,2,\xff\xfe,3\n"
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    loaded = load_file(fmt, path, chunk_bytes=chunk)
    rows, rejected = literal_reading(data, fmt, MAX_LINE_BYTES, 1024)
    assert rows_by_line(loaded) == rows
    assert rejected_by_line(loaded) == rejected
    assert loaded.data_lines == len(rows) + len(rejected)


# --- The whole-chunk reading agrees with the line-by-line one ------------------------------------

def _int_texts(odd: bool, allow_empty: bool = False):
    """Integers written plainly and, if ``odd``, every other way (allowed by the rules or not)."""
    plain = st.integers(-(10**18) + 1, 10**18 - 1).map(str)
    if not odd:
        return st.one_of(plain, st.just("")) if allow_empty else plain
    strange = st.sampled_from(["-0", "007", "+5", "5.0", "12.000", " 3", "1e3", "9" * 19, "-" + "9" * 18, "",
                               "0x1F", "٣"])
    return st.one_of(plain, plain, strange)


def _texts(odd: bool):
    return st.text(alphabet=st.sampled_from(list("ab1,.\r\"' é" if odd else "ab1.\"' é")), max_size=6)


@st.composite
def _chunk_lines(draw, fmt, odd):
    events = ["view", "addtocart", "transaction"] + (["View", "purchase"] if odd else [])
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        if fmt is EVENTS:
            event = draw(st.sampled_from(events))
            fields = [draw(_int_texts(odd)), draw(_int_texts(odd)), event, draw(_int_texts(odd)),
                      draw(_int_texts(odd, allow_empty=odd or event != "transaction"))]
        elif fmt is ITEM_PROPERTIES:
            fields = [draw(_int_texts(odd)), draw(_int_texts(odd)), draw(_texts(odd)), draw(_texts(odd))]
        else:
            fields = [draw(_int_texts(odd)), draw(_int_texts(odd, allow_empty=True))]
        lines.append(",".join(fields) + draw(st.sampled_from(["\n", "\n", "\r\n"])))
    return "".join(lines).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), odd=st.booleans())
@pytest.mark.parametrize("fmt", [EVENTS, ITEM_PROPERTIES, CATEGORY_TREE], ids=lambda f: f.name)
def test_reading_a_chunk_whole_gives_what_reading_it_line_by_line_gives(fmt, data, odd):
    """The fast path (Arrow reads the chunk as one CSV) must accept only chunks whose every line
    the careful path reads, and read them the same: plain and odd integers, CRLF, lone CRs,
    commas and quotes in text, unknown event types. Plain chunks must take the fast path."""
    import pyarrow as pa

    from retail_pipeline.lines import LineChunk
    from retail_pipeline.records import _parse_well_formed_chunk, parse_chunk, parse_chunk_by_line

    body = data.draw(_chunk_lines(fmt, odd))
    whole = _parse_well_formed_chunk(fmt, LineChunk(2, pa.py_buffer(body)))
    careful = parse_chunk_by_line(fmt, LineChunk(2, pa.py_buffer(body)))
    if not odd:
        assert whole is not None
    if whole is not None:
        assert careful.rejected == []
        assert whole.rows.to_pylist() == careful.rows.to_pylist()
    fast = parse_chunk(fmt, LineChunk(2, pa.py_buffer(body)))
    assert fast.rejected == careful.rejected and fast.rows.to_pylist() == careful.rows.to_pylist()


def test_a_chunk_with_zero_fraction_integers_still_reads_whole():
    """Real-looking events write a few transaction ids as ``2727.0``: one such line must not send
    its whole chunk (32 MB, ~1 M lines) down the line-by-line path. Values match the careful path."""
    import pyarrow as pa

    from retail_pipeline.lines import LineChunk
    from retail_pipeline.records import _parse_well_formed_chunk, parse_chunk_by_line

    body = (b"1433221332117,257597,view,355908,\n"
            b"1433224214164,992329,transaction,248676,2727.0\n"
            b"1433221999827,111016,transaction,318965,12\r\n")
    whole = _parse_well_formed_chunk(EVENTS, LineChunk(2, pa.py_buffer(body)))
    careful = parse_chunk_by_line(EVENTS, LineChunk(2, pa.py_buffer(body)))
    assert whole is not None and careful.rejected == []
    assert whole.rows.to_pylist() == careful.rows.to_pylist()
    assert whole.rows.column("transactionid").to_pylist() == [None, 2727, 12]
    for odd in (b"+12", b"12.5", b"1e3"):  # not integers as the rules write them: the careful path decides
        line = b"1433221999827,111016,transaction,318965," + odd + b"\n"
        assert _parse_well_formed_chunk(EVENTS, LineChunk(2, pa.py_buffer(body + line))) is None


# ------------------------------------------------------------------ a file read in parts

property_lines = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 6), st.integers(1, 4), st.sampled_from(["888", "categoryid", "available", "6"]),
                  st.sampled_from(["1", "2", "n5.000", "", "x y"]))
        .map(lambda r: f"{1_433_000_000_000 + r[0] * 604_800_000},{r[1]},{r[2]},{r[3]}"),
        st.sampled_from(["", "bad line", "1,2,3", "1433000000000,x,888,1"]),  # rejected
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=property_lines, parts=st.integers(1, 4), gz=st.booleans())
def test_a_file_read_in_parts_gives_the_rows_of_the_whole(tmp_path, lines, parts, gz):
    """The parts, in order, hold exactly the rows, rejections and line counts of the whole file."""
    from retail_pipeline.load import load_file_parts
    text = (ITEM_PROPERTIES.header + "\n" + "\n".join(lines) + "\n").encode()
    path = tmp_path / ("p.csv.gz" if gz else "p.csv")
    path.write_bytes(gzip.compress(text) if gz else text)
    whole = load_file(ITEM_PROPERTIES, path, chunk_bytes=64)
    pieces = list(load_file_parts(ITEM_PROPERTIES, path, parts=parts, chunk_bytes=64))
    assert len(pieces) == parts
    assert [row for p in pieces for row in p.rows.to_pylist()] == whole.rows.to_pylist()
    assert [row for p in pieces for row in p.rejected.to_pylist()] == whole.rejected.to_pylist()
    assert sum(p.data_lines for p in pieces) == whole.data_lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(property_lines, min_size=1, max_size=3), parts=st.integers(1, 3), ranges=st.integers(1, 3))
def test_item_properties_from_parts_of_files_are_the_latest_of_all_rows(tmp_path, files, parts, ranges):
    """Each file reduced part by part, the parts merged range by range: the same table as the
    latest value over all rows of all files at once (ties on time go to the later row)."""
    import pyarrow as pa
    from retail_pipeline.properties import latest_item_properties
    from retail_pipeline.stages import item_properties_by_range, item_property_file_parts
    paths = []
    for i, lines in enumerate(files):
        paths.append(write(tmp_path / f"item_properties_part{i}.csv", ITEM_PROPERTIES.header + "\n" + "\n".join(lines) + "\n"))
    latest = []
    for path in paths:
        for batches, _, _, _ in item_property_file_parts(str(path), parts, chunk_bytes=64):
            batches = list(batches)
            latest.append(pa.concat_tables(batches) if batches else None)
    latest = [t for t in latest if t is not None]
    everything = pa.concat_tables([load_file(ITEM_PROPERTIES, p).rows.drop_columns(["line"]) for p in paths])
    expected = latest_item_properties(everything.unify_dictionaries()).to_pylist() if everything.num_rows else []
    merged = [row for part in item_properties_by_range(latest, ranges) for row in part.to_pylist()] if latest else []
    assert merged == expected


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_every_line_of_a_long_file_is_in_exactly_one_part(tmp_path, parts):
    from retail_pipeline.load import load_file_parts
    lines = [f"{1_433_000_000_000 + i},{i % 97},{'888' if i % 3 else 'categoryid'},{i}" for i in range(3000)]
    path = write(tmp_path / "p.csv", ITEM_PROPERTIES.header + "\n" + "\n".join(lines) + "\n")
    pieces = list(load_file_parts(ITEM_PROPERTIES, path, parts=parts, chunk_bytes=100))
    assert len(pieces) == parts and all(p.rows.num_rows for p in pieces[:-1])
    assert [r["line"] for p in pieces for r in p.rows.to_pylist()] == list(range(2, 3002))
    assert sum(p.data_lines for p in pieces) == 3000
