"""The ``[retail]`` settings: where the inputs are, where work goes, where the database is published.

The class is named ``retail`` so its parameters are ``--retail-data-dir`` and so on on the
command line, and ``[retail]`` in ``luigi.cfg``.
"""

import luigi


class retail(luigi.Config):  # noqa: N801 - the name is the config section and CLI prefix
    data_dir = luigi.Parameter(default="data/sample", description="directory of the input CSV files")
    work_dir = luigi.Parameter(default="data/work", description="directory of intermediate files")
    database = luigi.Parameter(default="data/retail.db", description="the published SQLite database")
    shards = luigi.IntParameter(
        default=0, description="independent parts the event and property work is split into; 0: one per 32 MB of "
                               "events.csv, at least 4 (results do not depend on it)"
    )
    sqlite_writer = luigi.ChoiceParameter(
        default="pages", choices=["pages", "sqlite"],
        description="how the big tables get into SQLite: 'pages' writes their b-tree pages directly (fast), "
                    "'sqlite' has SQLite insert every row and build every index itself (slower; the same tables)",
    )
