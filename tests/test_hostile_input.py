"""Hostile input: what stops a run and what is tolerated row by row.

Fatal (docs/decisions.md, "Reading lines"): the real ``luigi`` command exits non-zero, prints one
``ERROR: <path>: ...`` line naming the file, and leaves the published database byte for byte as it
was. Tolerated: every line is loaded or rejected with a reason (``line too long``, ``undecodable
bytes``, ``... is not an integer`` for ids that do not fit in 64 bits), events far outside the
expected range of times are kept and counted, CRLF and a byte-order mark read exactly like LF.
The loaders are also fuzzed with arbitrary bytes, and a line of many megabytes is read without
ever being copied whole.
"""

from __future__ import annotations

import ctypes
import gzip
import os
import shutil
import sqlite3
import subprocess
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, assert_same_tables, pipeline_command, read_tables, run_pipeline, verify, write_inputs
from reference import build_reference
from retail_pipeline import lines as lines_module
from retail_pipeline import records
from retail_pipeline.errors import InputError
from retail_pipeline.lines import MAX_LINE_BYTES, strip_line_end
from retail_pipeline.load import load_file
from retail_pipeline.records import CATEGORY_TREE, EVENTS, ITEM_PROPERTIES, parse_line

EVENTS_HEADER = EVENTS.header + "\n"
PROPS_HEADER = ITEM_PROPERTIES.header + "\n"
TREE_HEADER = CATEGORY_TREE.header + "\n"
T0 = 1_433_116_800_000  # 2015-06-01 00:00:00 UTC
HOUR = 3_600_000

BASE = {
    "events.csv": EVENTS_HEADER + "".join(
        f"{T0 + k * 7 * 60_000},{k % 4},{('view', 'addtocart', 'transaction')[k % 3]},{k % 5},"
        f"{k if k % 3 == 2 else ''}\n" for k in range(40)),
    "item_properties_part1.csv": PROPS_HEADER + "".join(f"{T0 - HOUR},{k},categoryid,{10 + k % 2}\n" for k in range(5)),
    "item_properties_part2.csv": PROPS_HEADER + "".join(f"{T0},{k},available,1\n" for k in range(5)),
    "category_tree.csv": TREE_HEADER + "10,\n11,10\n",
}


# --- Fatal: one clear line, a non-zero exit, the published database untouched -----------------

@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A database published from BASE, and the work dir it was built in (shared by the fatal cases)."""
    root = tmp_path_factory.mktemp("published")
    result = run_pipeline(write_inputs(root / "data", BASE), root / "work", root / "retail.db")
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def error_lines(stderr: str) -> list[str]:
    """The pipeline's own error lines (Luigi's log lines start ``ERROR: [pid ...``)."""
    return [line for line in stderr.splitlines() if line.startswith("ERROR: ") and not line.startswith("ERROR: [pid")]


def run_broken(published, tmp_path, break_inputs, **run_options):
    """Run on a copy of BASE broken by ``break_inputs``, against a copy of the published database."""
    data = write_inputs(tmp_path / "data", BASE)
    break_inputs(data)
    database = tmp_path / "db" / "retail.db"
    database.parent.mkdir()
    shutil.copyfile(published / "retail.db", database)
    before = database.read_bytes()
    result = subprocess.run(pipeline_command(data, published / "work", database), cwd=REPO, capture_output=True,
                            text=True, timeout=180, **run_options)
    assert result.returncode > 0, f"exit status {result.returncode}\n{result.stderr[-3000:]}"
    assert database.read_bytes() == before, "the published database changed after a failed run"
    assert sorted(os.listdir(database.parent)) == ["retail.db"], "a temporary database was left behind"
    return data, result


def replace_with(make):
    """A ``break_inputs`` that removes ``name`` and lets ``make(path)`` put something else there."""
    def breaker(name):
        def apply(data):
            path = data / name
            if path.exists() or path.is_symlink():
                path.unlink()
            make(path)
        return apply
    return breaker


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def as_gzip(name: str, mangle):
    """Replace ``name`` by ``name.gz`` holding its gzip bytes passed through ``mangle``."""
    def apply(data):
        content = (data / name).read_bytes()
        (data / name).unlink()
        (data / (name + ".gz")).write_bytes(mangle(gzip.compress(content)))
    return apply


def flip_a_payload_byte(packed: bytes) -> bytes:
    middle = len(packed) // 2
    return packed[:middle] + bytes([packed[middle] ^ 0xFF]) + packed[middle + 1:]


def write(name: str, content: bytes | str):
    def apply(data):
        (data / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return apply


FATAL = [
    # (id, break_inputs, the file the error names, what the error says)
    ("missing", lambda d: (d / "events.csv").unlink(), "events.csv", "input file not found"),
    ("missing_all_properties", lambda d: [(d / n).unlink() for n in ("item_properties_part1.csv",
                                                                      "item_properties_part2.csv")],
     "item_properties*.csv", "input file not found: no file matches"),
    ("empty", write("events.csv", b""), "events.csv", "file is empty, expected a header line"),
    ("only_a_bom", write("category_tree.csv", b"\xef\xbb\xbf"), "category_tree.csv", "file is empty"),
    ("wrong_header", write("events.csv", BASE["events.csv"].replace("visitorid", "visitor_id", 1)),
     "events.csv", "wrong header: expected 'timestamp,visitorid,event,itemid,transactionid', found"),
    ("semicolons", write("events.csv", BASE["events.csv"].replace(",", ";")),
     "events.csv", "wrong header: expected 'timestamp,visitorid,event,itemid,transactionid', found"
                   " 'timestamp;visitorid;event;itemid;transactionid' (fields must be separated by commas)"),
    ("tabs", write("item_properties_part2.csv", BASE["item_properties_part2.csv"].replace(",", "\t")),
     "item_properties_part2.csv", "(fields must be separated by commas)"),
    ("truncated_gzip", as_gzip("events.csv", lambda b: b[: len(b) // 2]), "events.csv.gz", "cannot read: "),
    ("corrupt_gzip", as_gzip("item_properties_part1.csv", flip_a_payload_byte), "item_properties_part1.csv.gz",
     "cannot read: "),
    ("not_gzip_at_all", as_gzip("category_tree.csv", lambda b: b"categoryid,parentid\n10,\n"), "category_tree.csv.gz",
     "cannot read: Not a gzipped file"),
    ("directory", replace_with(lambda p: p.mkdir())("events.csv"), "events.csv", "is a directory, expected a file"),
    ("directory_among_properties", lambda d: (d / "item_properties_part3.csv").mkdir(), "item_properties_part3.csv",
     "is a directory, expected a file"),
    ("fifo", replace_with(os.mkfifo)("events.csv"), "events.csv", "is a named pipe (FIFO), expected a regular file"),
    ("device", replace_with(lambda p: p.symlink_to("/dev/zero"))("category_tree.csv"), "category_tree.csv",
     "is a character device, expected a regular file"),
    ("broken_symlink", replace_with(lambda p: p.symlink_to("gone.csv"))("events.csv"), "events.csv",
     "input file not found: it is a broken symbolic link to 'gone.csv'"),
]


@pytest.mark.slow
@pytest.mark.parametrize("break_inputs, name, message", [c[1:] for c in FATAL], ids=[c[0] for c in FATAL])
def test_unusable_input_stops_the_run_naming_the_file(published, tmp_path, break_inputs, name, message):
    data, result = run_broken(published, tmp_path, break_inputs)
    (line,) = error_lines(result.stderr) or [result.stderr[-3000:]]
    assert line.startswith(f"ERROR: {data / name}: ") and message in line, line


def _drop_file_permission_override():
    """(In the child, as root.) Lose CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that file
    permissions apply to root too: the bounding set shrinks and exec recomputes root's capabilities."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _can_drop_capabilities() -> bool:
    try:
        return subprocess.run(["true"], preexec_fn=_drop_file_permission_override).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.slow
def test_unreadable_file_stops_the_run_naming_the_file(published, tmp_path):
    """chmod 000 is a real permission error; as root, the run is made without the capability that
    lets root ignore file permissions (so no LD_PRELOAD or fake error is involved)."""
    options = {}
    if os.geteuid() == 0:
        if not _can_drop_capabilities():
            pytest.skip("running as root without CAP_SETPCAP: cannot make root honour file permissions")
        options["preexec_fn"] = _drop_file_permission_override

    def lock(data):
        (data / "events.csv").write_text(BASE["events.csv"] + f"{T0 + 9 * HOUR},9,view,1,\n")
        (data / "events.csv").chmod(0)

    data, result = run_broken(published, tmp_path, lock, **options)
    (data / "events.csv").chmod(0o644)
    assert error_lines(result.stderr) == [f"ERROR: {data / 'events.csv'}: cannot open: Permission denied"]


# --- Header-only files: valid, empty inputs ----------------------------------------------------

@pytest.mark.slow
def test_header_only_files_are_valid_empty_inputs(tmp_path):
    data = write_inputs(tmp_path / "data", {"events.csv": EVENTS_HEADER, "item_properties_part1.csv": PROPS_HEADER,
                                            "item_properties_part2.csv.gz": gz(PROPS_HEADER),
                                            "category_tree.csv": "\ufeff" + TREE_HEADER.replace("\n", "\r\n")})
    result = run_pipeline(data, tmp_path / "work", tmp_path / "retail.db")
    assert result.returncode == 0, result.stderr[-3000:]
    tables = read_tables(tmp_path / "retail.db")
    assert all(tables[name] == [] for name in tables if name != "data_quality")
    quality = {r["check_name"]: r["value"] for r in tables["data_quality"]}
    assert quality["data_lines events.csv"] == quality["data_lines item_properties_part2.csv.gz"] == 0
    assert quality["events_published"] == 0
    assert_same_tables(tables, build_reference(data))
    checked = verify(tmp_path / "retail.db")
    assert checked.returncode == 0, checked.stdout


# --- Tolerated, row by row -----------------------------------------------------------------------

LONG_VALUE = "v" * (MAX_LINE_BYTES + 1 - len(f"{T0},3,888,"))  # the line is MAX_LINE_BYTES + 1 bytes
EDGE_VALUE = LONG_VALUE[:-1]  # exactly MAX_LINE_BYTES bytes: still read
HOSTILE = {
    "events.csv": b"\xef\xbb\xbf" + b"\r\n".join([
        EVENTS.header.encode(),
        f"{T0},1,view,1,".encode(),                                    # 2 kept
        f"{T0 + 1},1,view,caf\xe9,".encode("latin-1"),                  # 3 undecodable bytes
        f"{T0 + 2},9223372036854775808,view,1,".encode(),               # 4 visitorid: 2**63 does not fit
        f"{T0 + 3},1,view,99999999999999999999,".encode(),              # 5 itemid: 20 digits
        f"{T0 + 4},1,transaction,1,-9223372036854775809".encode(),      # 6 transactionid below -2**63
        f"18446744073709551616,1,view,1,".encode(),                      # 7 timestamp: 2**64
        f"{T0 + 5},999999999999999999,view,999999999999999999,".encode(),  # 8 the largest ids: kept
        f"{T0 + 6},1,view,1,".encode() + b"x" * (3 * 1024 * 1024),     # 9 3 MB: line too long
        b"",                                                            # 10 blank line
        f"{T0 + HOUR},2,transaction,1,5".encode(),                      # 11 kept
    ]) + b"\r\n",
    "item_properties_part1.csv": (PROPS_HEADER + f"{T0},3,888,{LONG_VALUE}\n" + f"{T0},3,888,{EDGE_VALUE}\n"
                                  + f"{T0},4,888,{EDGE_VALUE}\r\n"  # MAX_LINE_BYTES + 1 with the \r: still read
                                  + f"{T0 - HOUR},1,categoryid,10\n"),
    "item_properties_part2.csv.gz": gz(PROPS_HEADER + f"{T0},2,categoryid,11\n" + "9" * (5 * 1024 * 1024) + "\n"
                                       + f"{T0},5,available,1\n"),
    "category_tree.csv": TREE_HEADER + "10,\n11,10\n",
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = write_inputs(root / "data", HOSTILE)
    result = run_pipeline(data, root / "work", root / "retail.db")
    return data, root / "retail.db", result


@pytest.mark.slow
def test_hostile_rows_are_rejected_with_their_reason_and_the_rest_loaded(hostile_run):
    data, database, result = hostile_run
    assert result.returncode == 0, result.stderr[-3000:]
    tables = read_tables(database)
    rejected = {(r["source_file"], r["line_number"]): (r["reason"], r["raw"]) for r in tables["rejected_rows"]}
    assert {key: reason for key, (reason, _) in rejected.items()} == {
        ("events.csv", 3): "undecodable bytes",
        ("events.csv", 4): "visitorid is not an integer",
        ("events.csv", 5): "itemid is not an integer",
        ("events.csv", 6): "transactionid is not an integer",
        ("events.csv", 7): "timestamp is not an integer",
        ("events.csv", 9): "line too long",
        ("events.csv", 10): "blank line",
        ("item_properties_part1.csv", 2): "line too long",
        ("item_properties_part2.csv.gz", 3): "line too long",
    }
    assert rejected[("events.csv", 3)][1] == f"{T0 + 1},1,view,caf\ufffd,"
    assert rejected[("events.csv", 9)][1] == (f"{T0 + 6},1,view,1," + "x" * 1024)[:1024]
    assert rejected[("item_properties_part2.csv.gz", 3)][1] == "9" * 1024
    events = {r["source_line"]: r for r in tables["events_enriched"]}
    assert sorted(events) == [2, 8, 11]
    assert (events[8]["visitorid"], events[8]["itemid"]) == (999_999_999_999_999_999, 999_999_999_999_999_999)
    values = {(r["itemid"], r["property"]): r["value"] for r in tables["item_properties"]}
    assert values[(3, "888")] == values[(4, "888")] == EDGE_VALUE  # exactly at the limit: read


@pytest.mark.slow
def test_hostile_rows_match_the_reference_and_verify(hostile_run):
    data, database, result = hostile_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_tables(read_tables(database), build_reference(data))
    checked = verify(database)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.slow
def test_crlf_and_a_byte_order_mark_publish_exactly_what_lf_does(hostile_run, tmp_path):
    data, database, result = hostile_run
    assert result.returncode == 0, result.stderr[-3000:]
    plain = tmp_path / "lf"
    plain.mkdir()
    for path in data.iterdir():
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
        content = content.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
        (plain / path.name).write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    assert (plain / "events.csv").read_bytes() != (data / "events.csv").read_bytes()
    again = run_pipeline(plain, tmp_path / "work", tmp_path / "retail.db")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_tables(read_tables(tmp_path / "retail.db"), read_tables(database))


FAR = [0, -1, 946_684_799_999, 4_102_444_800_000, 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_001,
       999_999_999_999_999_999, -999_999_999_999_999_999]


@pytest.mark.slow
def test_events_far_outside_the_expected_range_are_kept_counted_and_left_out_of_the_hours(tmp_path):
    lines = [f"{t},{100 + k},view,1," for k, t in enumerate(FAR)]
    lines += [f"{T0 + k * HOUR // 2},{k % 3},view,{k % 2},"for k in range(10)]
    data = write_inputs(tmp_path / "data", {**BASE, "events.csv": EVENTS_HEADER + "\n".join(lines) + "\n"})
    result = run_pipeline(data, tmp_path / "work", tmp_path / "retail.db", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    tables = read_tables(tmp_path / "retail.db")
    assert len(tables["events_enriched"]) == len(lines)
    quality = {r["check_name"]: r["value"] for r in tables["data_quality"]}
    assert quality["events_outside_expected_range"] == len(FAR)
    assert [r["hour"] for r in tables["event_type_counts"]] == [f"2015-06-01 0{h}:00:00" for h in range(5)]
    assert_same_tables(tables, build_reference(data))
    checked = verify(tmp_path / "retail.db")
    assert checked.returncode == 0, checked.stdout


# --- Library level: long lines without copies, and fuzzing with arbitrary bytes --------------------

@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_line_of_many_megabytes_is_rejected_without_being_held_in_memory(tmp_path, compressed):
    content = (EVENTS_HEADER + f"{T0},1,view,1,\n" + "7" * (40 * 1024 * 1024) + "\n" + f"{T0},2,view,2,\n"
               + "8" * (20 * 1024 * 1024)).encode()  # the last line has no newline
    path = tmp_path / ("events.csv.gz" if compressed else "events.csv")
    path.write_bytes(gzip.compress(content, 1) if compressed else content)
    del content
    warm_up = tmp_path / "small.csv"  # the first load imports modules: not what is measured
    warm_up.write_text(EVENTS_HEADER + f"{T0},1,view,1,\n" + "x" * (MAX_LINE_BYTES + 1) + "\n")
    load_file(EVENTS, warm_up)
    tracemalloc.start()
    try:
        loaded = load_file(EVENTS, path, chunk_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak:,} bytes of Python objects at the peak"
    assert loaded.data_lines == 4 and loaded.rows.column("line").to_pylist() == [2, 4]
    assert [(r["line_number"], r["reason"], r["raw"]) for r in loaded.rejected.to_pylist()] == [
        (3, "line too long", "7" * 1024), (5, "line too long", "8" * 1024)]


def literal_reading(data: bytes, fmt, limit: int, prefix: int):
    """docs/decisions.md word for word: BOM, split on \\n, one \\r, the length limit, then the rules."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    rows, rejected = {}, {}
    for number, raw in enumerate(pieces[1:], start=2):
        raw = strip_line_end(raw)
        if len(raw) > limit:
            rejected[number] = ("line too long", raw[:prefix].decode("utf-8", "replace"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            rejected[number] = ("undecodable bytes", raw.decode("utf-8", "replace"))
            continue
        result = parse_line(fmt, text)
        if isinstance(result, str):
            rejected[number] = (result, text)
        else:
            rows[number] = result
    return rows, rejected


RAW_LINE = st.one_of(
    st.binary(max_size=30),
    st.binary(min_size=40, max_size=110),  # around the (lowered) length limit
    st.sampled_from([b"1433000000000,1,view,10,", b"1,2,888,x", b"5,", b"1,2,transaction,3,4", b"\xef\xbb\xbf",
                     b"\xff\xfe", b"\r", b"1,2,3\r", b"caf\xc3\xa9,1", b"\xc3", b"\x00,\x00"]),
)


@pytest.mark.parametrize("fmt", [EVENTS, ITEM_PROPERTIES, CATEGORY_TREE], ids=lambda f: f.name)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.tuples(RAW_LINE, st.sampled_from([b"\n", b"\r\n"])), max_size=30),
       bom=st.booleans(), unterminated=st.booleans(), compressed=st.booleans(), chunk=st.integers(16, 300),
       limit=st.integers(48, 90))  # not below the longest header
def test_arbitrary_bytes_are_each_loaded_or_rejected_never_lost(tmp_path, fmt, body, bom, unterminated, compressed,
                                                                 chunk, limit):
    """Raw bytes (NUL, lone \\r, broken UTF-8, stray BOMs, lines past the length limit, cut at every
    chunk boundary) on both readers: each data line is loaded or rejected exactly as the literal
    rules say, and the line numbers loaded and rejected are exactly 2..n+1."""
    data = (b"\xef\xbb\xbf" if bom else b"") + fmt.header.encode() + b"\n" + b"".join(line + end for line, end in body)
    if unterminated and body:  # the last line loses its terminator (only it: never the header's)
        data = data[: len(data) - len(body[-1][1])] + b"tail"
    path = tmp_path / ("input.csv.gz" if compressed else "input.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    prefix = 20
    with pytest.MonkeyPatch.context() as patch:  # a small length limit, so that fuzzing reaches it
        patch.setattr(lines_module, "MAX_LINE_BYTES", limit)
        patch.setattr(lines_module, "_KEEP_OF_LONG_LINE", limit + 2)
        patch.setattr(records, "MAX_LINE_BYTES", limit)
        patch.setattr(records, "RAW_PREFIX_BYTES", prefix)
        loaded = load_file(fmt, path, chunk_bytes=chunk)
    rows, rejected = literal_reading(data, fmt, limit, prefix)
    got_rows = {r.pop("line"): tuple(r.values()) for r in loaded.rows.to_pylist()}
    got_rejected = {r["line_number"]: (r["reason"], r["raw"]) for r in loaded.rejected.to_pylist()}
    assert got_rows == rows
    assert got_rejected == rejected
    assert sorted([*got_rows, *got_rejected]) == list(range(2, loaded.data_lines + 2))


def test_a_header_longer_than_the_line_limit_is_a_wrong_header_quoted_briefly(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"t" * (MAX_LINE_BYTES * 3) + b"\n1,1,view,1,\n")
    with pytest.raises(InputError) as error:
        load_file(EVENTS, path)
    message = str(error.value)
    assert message.startswith(f"{path}: wrong header: expected ") and len(message) < 400


def test_verify_results_holds_the_hour_tables_to_the_expected_range(tmp_path):
    """verify_results.py and the reference agree on the rule (a database built by the reference
    passes), and a database that breaks it fails the named check."""
    from reference import write_sqlite

    lines = [f"{t},{100 + k},view,1," for k, t in enumerate(FAR)] + [f"{T0 + k * HOUR},1,view,1," for k in range(3)]
    tables = build_reference(write_inputs(tmp_path / "data", {**BASE, "events.csv": EVENTS_HEADER + "\n".join(lines)}))
    assert [r["hour"] for r in tables["event_type_counts"]] == [f"2015-06-01 0{h}:00:00" for h in range(3)]
    good = tmp_path / "good.db"
    write_sqlite(tables, good)
    checked = verify(good)
    assert checked.returncode == 0, checked.stdout
    corruptions = {
        "data_quality_counts":
            "UPDATE data_quality SET value = value - 1 WHERE check_name = 'events_outside_expected_range'",
        "data_quality_names": "DELETE FROM data_quality WHERE check_name = 'events_outside_expected_range'",
        "event_type_counts_hours": "INSERT INTO event_type_counts VALUES ('1970-01-01 00:00:00', 1, 0, 0, 1)",
    }
    for check, sql in corruptions.items():
        bad = tmp_path / f"{check}.db"
        shutil.copyfile(good, bad)
        conn = sqlite3.connect(bad)
        with conn:
            conn.execute(sql)
        conn.close()
        result = verify(bad)
        assert f"FAIL {check}:" in result.stdout, (check, result.stdout)
