"""How the work is split, from the size of the inputs: the number of parts follows the data,
so every task's memory is set by one part of the work, not by the whole data set.

- Visitor shards (``[retail] shards``; 0, the default, chooses): the events are split into
  shards of about ``EVENTS_BYTES_PER_SHARD`` of events.csv each (at least ``MIN_SHARDS``, for
  the two cores), and every event task (loading, enrichment, the analyses' partial results)
  holds one shard at a time. The item properties are written and reduced in as many itemid
  ranges.
- Property file parts: each item_properties file is read in parts of about
  ``PROPERTY_BYTES_PER_PART`` of its text, one after the other.

Results do not depend on either number (tests pin it); only memory and time do.
"""

from __future__ import annotations

from retail_pipeline.load import parts_for, text_size

from .config import retail
from .inputs import input_files

MIN_SHARDS = 4
EVENTS_BYTES_PER_SHARD = 32 << 20  # ~0.9 M events: a shard's enrichment peaks under ~1 GB
PROPERTY_BYTES_PER_PART = 256 << 20  # ~5 M lines: a part's load peaks under ~1.5 GB


def shard_count() -> int:
    """``[retail] shards`` if set (> 0), else one per ``EVENTS_BYTES_PER_SHARD`` of events.csv."""
    configured = retail().shards
    if configured > 0:
        return configured
    return parts_for(sum(text_size(task.path) for task in input_files("events")), EVENTS_BYTES_PER_SHARD,
                     MIN_SHARDS)


def property_file_parts(path: str) -> int:
    """How many parts the property file ``path`` is read in."""
    return parts_for(text_size(path), PROPERTY_BYTES_PER_PART)
