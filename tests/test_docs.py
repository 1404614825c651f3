"""The documentation cannot go stale: what README.md and docs/ say is checked against what is there.

- docs/data-contract.md is what scripts/contract.py writes from the schema, the Datasette metadata,
  the glossary and docs/contract-rules.md now; the schema and datasette/metadata.yml describe the
  same tables and columns, and so does the README's table of tables;
- no link in README.md or docs/*.md leaves the repository: a relative link names a file of the
  checkout (and a heading of it, for an anchor);
- the README's shell blocks run as written on the bundled sample (paths under /tmp, ports and the
  demo work dir moved into the test's own folder, `make` told not to rebuild .venv): the quick
  start, the commands without make, the browsing commands and the scheduler walkthrough, each
  checked for what the text around it says it does;
- `make help` lists every target with its line; the tests docs/failure-modes.md names exist.
"""

from __future__ import annotations

import configparser
import copy
import html
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, free_port, get, wait_until_answering

sys.path.insert(0, str(REPO))
from retail_pipeline.schema import EVENTS_VIEW_SQL, TABLES  # noqa: E402

README = REPO / "README.md"
DOCS = REPO / "docs"
MAKE = ["make", "-o", ".venv/.installed"]  # as written, but never (re)building the shared .venv
EXTRA_TABLES = {"events", "_build_info"}  # published besides schema.TABLES: a view, the build record


def load_contract_script():
    spec = importlib.util.spec_from_file_location("contract", REPO / "scripts" / "contract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metadata_tables() -> dict:
    return yaml.safe_load((REPO / "datasette" / "metadata.yml").read_text())["databases"]["retail"]["tables"]


# ------------------------------------------------------------------ Markdown helpers


def without_code(text: str) -> str:
    """The text with fenced code blocks blanked (their lines kept, so nothing in them counts)."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)


def sections(text: str) -> dict[str, str]:
    """The body of each `## ` section, by its heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def shell_blocks(body: str) -> list[list[str]]:
    """The ```sh blocks of a section, each as its commands: continuation lines joined, comments
    and blank lines dropped."""
    blocks = []
    for block in re.findall(r"^```sh\n(.*?)^```", body, flags=re.S | re.M):
        joined = re.sub(r"\\\n\s*", "", block)
        commands = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
        blocks.append([c for c in commands if c and not c.startswith("#")])
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_code(path.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def links(path: Path) -> list[str]:
    text = without_code(path.read_text())
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text) + re.findall(r"<([a-z]+://[^>]+)>", text)


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# ------------------------------------------------------------------ (a) the contract is generated


def test_the_data_contract_is_what_scripts_contract_py_writes_now():
    contract = load_contract_script()
    expected = contract.render()
    written = (DOCS / "data-contract.md").read_text()
    assert written == expected, (
        "docs/data-contract.md is stale (the schema, datasette/metadata.yml, datasette/glossary.yml or "
        "docs/contract-rules.md changed): run .venv/bin/python scripts/contract.py")


def test_the_contract_lists_every_published_table_and_column():
    text = (DOCS / "data-contract.md").read_text()
    headings = anchors(DOCS / "data-contract.md")
    for name in [*TABLES, *EXTRA_TABLES]:
        assert name in headings, f"docs/data-contract.md has no section for {name}"
    for name, schema in TABLES.items():
        entry = text.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]
        listed = re.findall(r"^\| `([^`]+)` \| (\w+) \|", entry, flags=re.M)
        assert listed == list(schema.columns), f"{name}: the contract's columns differ from the schema's"


# ------------------------------------------------------------------ (b) one source for the descriptions


def test_schema_and_datasette_metadata_describe_the_same_tables_and_columns():
    described = metadata_tables()
    problems = []
    for name, schema in TABLES.items():
        entry = described.get(name)
        if not entry or not str(entry.get("description") or "").strip():
            problems.append(f"{name}: no description in datasette/metadata.yml")
            continue
        columns = entry.get("columns") or {}
        problems += [f"{name}.{c}: no description in datasette/metadata.yml"
                     for c in schema.column_names if not str(columns.get(c) or "").strip()]
        problems += [f"{name}.{c}: described in datasette/metadata.yml, not a column of the schema"
                     for c in columns if c not in schema.column_names]
    problems += [f"{name}: described in datasette/metadata.yml, not a table of the schema"
                 for name in described if name not in TABLES and name not in EXTRA_TABLES]
    view_columns = [c.strip() for c in re.search(r"SELECT (.*) FROM", EVENTS_VIEW_SQL).group(1).split(",")]
    assert list(described["events"]["columns"]) == view_columns, "the events view's described columns"
    assert not problems, "\n".join(problems)


def test_the_contract_script_refuses_sources_that_disagree():
    contract = load_contract_script()
    metadata = yaml.safe_load((REPO / "datasette" / "metadata.yml").read_text())
    assert contract.disagreements(metadata) == []
    broken = copy.deepcopy(metadata)
    tables = broken["databases"]["retail"]["tables"]
    del tables["items"]["columns"]["category_changes"]
    tables["sessions"]["columns"]["no_such_column"] = "Not published."
    tables["no_such_table"] = {"description": "Not published.", "columns": {}}
    del tables["cohort_retention"]
    found = "\n".join(contract.disagreements(broken))
    for problem in ("items.category_changes", "sessions.no_such_column", "no_such_table", "cohort_retention"):
        assert problem in found


def test_the_readme_table_of_tables_lists_every_published_table():
    body = sections(README.read_text())["What gets published"]
    listed = re.findall(r"^\| \[`([^`]+)`\]\(docs/data-contract\.md#([^)]+)\)", body, flags=re.M)
    assert sorted(name for name, _ in listed) == sorted([*TABLES, *EXTRA_TABLES])
    assert all(name == anchor for name, anchor in listed)


# ------------------------------------------------------------------ (c) no link leaves the repository


def test_no_link_leaves_the_repository():
    root = REPO.resolve()
    problems = []
    for path in documents():
        text = path.read_text()
        if "../shared" in text or "shared/SPEC" in text:
            problems.append(f"{path.name}: mentions ../shared, which is outside the repository")
        for target in links(path):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue  # a web address
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path.resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{path.name}: {target} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{path.name}: {target} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{path.name}: {target}: no such heading in {resolved.name}")
    assert not problems, "\n".join(problems)


def test_the_readme_is_for_users_short():
    lines = README.read_text().count("\n")
    assert lines < 200, f"README.md has {lines} lines: move engineering detail to docs/"
    text = README.read_text()
    for needed in ("docs/data-contract.md", "datasette/glossary.yml", "/-/glossary",
                   "docs/screenshots/dashboard_item.png", "docs/screenshots/dashboard_category.png",
                   "docs/screenshots/dashboard_visitor.png"):
        assert needed in text, f"README.md does not mention {needed}"


def test_the_tests_named_in_failure_modes_exist():
    defined = set(re.findall(r"^(?:async )?def (test_\w+)", "\n".join(
        p.read_text() for p in (REPO / "tests").glob("test_*.py")), flags=re.M))
    named = set(re.findall(r"(?<![/\w])(test_\w+)(?!\w|\.py)", (DOCS / "failure-modes.md").read_text()))
    missing = [n for n in sorted(named) if not any(d == n or (n.endswith("_") and d.startswith(n)) for d in defined)]
    assert named and not missing, f"docs/failure-modes.md names tests that do not exist: {missing}"


# ------------------------------------------------------------------ (d) the README's commands, as written


# Settings a caller's environment could carry into make or luigi (e.g. when `make test` runs this).
FOREIGN = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "DATABASE", "PORT", "WORK_DIR", "DATA_DIR", "LUIGI_CONFIG_PATH")


def clean_env(**extra) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in FOREIGN}, **extra}


def run(command: str | list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """A shell command line (str, run by bash -e) or an argv, from the repository root."""
    argv = ["bash", "-e", "-c", command] if isinstance(command, str) else command
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env if env is not None else clean_env())


def make_argv(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "make", command
    return MAKE + words[1:]


def assert_verified(output: str):
    checks = re.findall(r"^(PASS|FAIL) (\S+):", output, flags=re.M)
    assert checks and all(status == "PASS" for status, _ in checks), output[-3000:]


def assert_tables_summary(output: str):
    summary = output.split("Published tables:\n", 1)[1]
    counts = dict(re.findall(r"^  (\w+) +([\d,]+)$", summary, flags=re.M))
    assert set(counts) == set(TABLES), f"the run's table summary: {sorted(counts)}"
    assert int(counts["events_enriched"].replace(",", "")) > 0


def test_quick_start_commands_do_what_the_readme_says(tmp_path):
    body = sections(README.read_text())["Quick start"]
    (block,) = shell_blocks(body)
    assert block == ["make run", "make test"]
    # make run: the published tables with their counts, verify_results.py's checks, "Published: <path>"
    database = tmp_path / "retail.db"
    env = clean_env(DATABASE=str(database), WORK_DIR=str(tmp_path / "work"))
    first = run(make_argv(block[0]), env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Published tables:" in body and "`PASS`" in body and "Published: /" in body
    assert_tables_summary(first.stdout)
    assert_verified(first.stdout)
    assert f"Published: {database}" in first.stdout.splitlines(), first.stdout[-500:]
    assert database.exists()
    # ...and run again with nothing changed: no task runs, the database is checked again
    assert "Did not run any tasks" in body
    again = run(make_argv(block[0]), env=env)
    assert again.returncode == 0 and "Did not run any tasks" in again.stderr, again.stderr[-2000:]
    assert_verified(again.stdout)
    assert "UnconsumedParameterWarning" not in first.stderr + again.stderr
    # make test: the whole suite with pytest, which is what CI runs
    dry = run(make_argv(block[1]) + ["-n"])
    assert dry.returncode == 0 and dry.stdout.strip().splitlines()[-1] == ".venv/bin/python -m pytest"
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


@pytest.fixture(scope="module")
def rr(tmp_path_factory) -> Path:
    """The README's "Running it yourself" block, run as written with /tmp/rr moved into a folder of
    the test's own; its database is the one the browsing commands serve."""
    folder = tmp_path_factory.mktemp("readme") / "rr"
    body = sections(README.read_text())["Running it yourself"]
    (block,) = [b for b in shell_blocks(body) if any("verify_results.py" in c for c in b)]
    assert block[0] == "source .venv/bin/activate"
    script = "\n".join(block).replace("/tmp/rr", str(folder))
    result = run(script)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_tables_summary(result.stdout)
    assert_verified(result.stdout)
    assert "UnconsumedParameterWarning" not in result.stderr
    return folder


def test_running_it_yourself_publishes_and_verifies(rr):
    assert (rr / "retail.db").exists()


def test_the_settings_table_matches_luigi_cfg():
    body = sections(README.read_text())["Running it yourself"]
    config = configparser.ConfigParser()
    config.read(REPO / "luigi.cfg")
    rows = re.findall(r"^\| `(\w+)`(?: \(`(--[\w-]+)`\))? \| `?([^`|]+?)`? \|", body, flags=re.M)
    assert {name for name, _, _ in rows} >= {"data_dir", "work_dir", "database"}
    for name, flag, default in rows:
        assert config["retail"][name] == default, f"README says {name} defaults to {default}"
        if flag:
            assert flag == "--retail-" + name.replace("_", "-")
    # make run passes DATA_DIR / WORK_DIR / DATABASE on, as the text says
    dry = run(MAKE + ["-n", "run", "DATA_DIR=/x/data", "WORK_DIR=/x/work", "DATABASE=/x/r.db"])
    assert "--retail-data-dir /x/data" in dry.stdout and "--retail-work-dir /x/work" in dry.stdout
    assert "--retail-database /x/r.db" in dry.stdout and "verify_results.py --database /x/r.db" in dry.stdout
    full = [b for b in shell_blocks(sections(README.read_text())["Running it yourself"]) if b[0].startswith("make run")]
    assert full and "--retail-data-dir" in run(make_argv(full[0][0]) + ["-n"]).stdout


def test_browsing_commands_serve_the_pages_the_readme_names(rr, tmp_path):
    body = sections(README.read_text())["Browsing in Datasette"]
    (block,) = shell_blocks(body)
    default, other = block
    assert default == "make serve"
    # the first line's comment: the default database and address
    raw = re.search(r"^make serve +# (\S+) on http://127\.0\.0\.1:(\d+)/", body, flags=re.M)
    dry = run(make_argv(default) + ["-n"]).stdout
    assert f"scripts/serve.py --port {raw.group(2)} --database {raw.group(1)}" in dry
    # the second line, with a free port and the database built by the "Running it yourself" block
    port = free_port()
    command = re.sub(r"PORT=\d+", f"PORT={port}", other).replace("/tmp/rr", str(rr))
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(make_argv(command), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              env=clean_env(), start_new_session=True)
    try:
        wait_until_answering(server, f"http://127.0.0.1:{port}", tmp_path / "serve.log", timeout=120)
        paths = set(re.findall(r"http://127\.0\.0\.1:8001(/[^\s>)`]*)", body))
        paths |= set(re.findall(r"`(/(?:retail|-)/[^`\s]*)`", body))
        assert {"/", "/retail", "/-/glossary", "/-/dashboards/retail", "/-/dashboards/item"} <= paths
        pages = {}
        for path in sorted(paths):
            status, text = get(f"http://127.0.0.1:{port}{path}")
            assert status == 200, f"{path}: HTTP {status}"
            pages[path] = html.unescape(text)
        assert "view_to_purchase_rate" in pages["/-/glossary"]
        dashboards = yaml.safe_load((REPO / "datasette" / "dashboards.yml").read_text())["plugins"]["datasette-dashboards"]
        for slug_, dashboard in dashboards.items():
            if f"/-/dashboards/{slug_}" in pages:
                assert dashboard["title"] in pages[f"/-/dashboards/{slug_}"]
        queries = yaml.safe_load((REPO / "datasette" / "metadata.yml").read_text())["databases"]["retail"]["queries"]
        assert f"{len(queries)} canned queries" in body
        for query in queries.values():
            assert query["title"] in pages["/retail"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_the_scheduler_walkthrough_runs_the_graph_visibly(tmp_path):
    body = sections(README.read_text())["Running on Luigi's central scheduler"]
    (block,) = shell_blocks(body)
    assert block[0] == "make scheduler" and block[-1] == "make scheduler-stop"
    (command,) = [c for c in block if "RunAll" in c]
    assert "--local-scheduler" not in command
    # `make scheduler` starts luigid on the port luigi.cfg sends runs to
    config = configparser.ConfigParser()
    config.read(REPO / "luigi.cfg")
    assert "scripts/scheduler.sh start" in run(make_argv("make scheduler") + ["-n"]).stdout
    assert f"PORT=${{PORT:-{config['core']['scheduler_port']}}}" in (REPO / "scripts" / "scheduler.sh").read_text()
    # A luigid of the test's own (not var/luigid, which a person may be using), found the way the
    # walkthrough's luigi finds one: through the configuration.
    port = free_port()
    (tmp_path / "logs").mkdir()
    (tmp_path / "port.cfg").write_text(f"[core]\nscheduler_port = {port}\n")
    luigid = subprocess.Popen(
        [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port), "--state-path",
         str(tmp_path / "state.pickle"), "--logdir", str(tmp_path / "logs")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"http://127.0.0.1:{port}/api/ping")
                break
            except OSError:
                assert luigid.poll() is None and time.monotonic() < deadline, "luigid did not start"
                time.sleep(0.1)
        script = command.replace("var/demo", str(tmp_path / "demo"))
        result = run(script, env=clean_env(LUIGI_CONFIG_PATH=str(tmp_path / "port.cfg")))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Did not run any tasks" not in result.stderr
        assert "ran successfully" in result.stderr and "This progress looks :)" in result.stderr
        assert "This progress looks :)" in body
        assert "UnconsumedParameterWarning" not in result.stderr
        assert (tmp_path / "demo" / "retail.db").exists()
        status, tasks = get(f"http://127.0.0.1:{port}/api/task_list?data=%7B%22status%22%3A%22DONE%22%7D")
        assert status == 200 and "RunAll" in tasks, "the run did not go through the test's luigid"
    finally:
        luigid.terminate()
        luigid.wait(timeout=30)


# ------------------------------------------------------------------ (e) make help


def test_make_help_lists_every_target_with_one_line():
    makefile = (REPO / "Makefile").read_text()
    targets = [t for t in re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, flags=re.M)]
    assert set(targets) >= {"help", "run", "test", "install", "serve", "scheduler", "scheduler-stop",
                            "sample", "bench", "clean"}
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, flags=re.M).group(1).split())
    assert phony == set(targets)
    result = run(["make", "help"])
    assert result.returncode == 0
    described = dict(re.findall(r"^  ([a-z][a-z-]*) +(\S.*)$", result.stdout, flags=re.M))
    assert sorted(described) == sorted(targets), result.stdout
    assert len(result.stdout.strip().splitlines()) == len(targets) + 1
    assert run(["make"]).stdout == result.stdout  # `make` alone is `make help`
