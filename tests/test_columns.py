"""The column helpers' folds: reducing parts in batches gives what one reduction of all parts gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from retail_pipeline.columns import distinct, position_lookup, reduce_in_batches, union

arrays = st.lists(st.lists(st.integers(-5, 40), max_size=30).map(lambda v: np.array(v, np.int64)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(arrays)
def test_union_is_the_distinct_values_of_all_arrays(parts):
    expected = set(int(v) for part in parts for v in part)
    got = union(parts)
    assert got.dtype == np.int64
    assert sorted(got.tolist()) == sorted(expected)


@settings(max_examples=200, deadline=None)
@given(arrays, st.integers(1, 4))
def test_a_top_k_reduced_in_batches_is_the_top_k_of_everything(parts, k):
    """A reduction that keeps the k largest values (ties and duplicates included) of whatever it
    is given: batches of any size give the same as one reduction of every part."""
    def top(chunks):
        return np.sort(np.concatenate(chunks))[::-1][:k]

    got = reduce_in_batches(parts, top, len)
    if not parts:
        assert got is None
    else:
        assert got.tolist() == top(parts).tolist()


def test_reduce_in_batches_holds_about_twice_the_result_plus_one_part():
    """Each part is reduced with the result so far once the waiting parts hold as many rows as
    it: never every part at once, and the result is reduced O(log) times, not once per part."""
    calls = []

    def reduce(chunks):
        calls.append(sum(len(c) for c in chunks))
        return np.unique(np.concatenate(chunks))

    parts = [np.arange(k * 10, k * 10 + 10) for k in range(100)]  # all distinct: the result grows
    got = reduce_in_batches(parts, reduce, len)
    assert got.tolist() == list(range(1000))
    assert len(calls) <= 12  # doubling: log2(100) + a few, against 100 reductions one part at a time
    assert max(calls) <= 2 * 1000 + 10


# ids both dense (a small range, marked in a table) and far apart (hashed or searched)
ids = st.lists(st.one_of(st.integers(-3, 50), st.integers(-(1 << 62), 1 << 62)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ids)
def test_distinct_is_numpy_unique(values):
    values = np.array(values, np.int64)
    got = distinct(values)
    assert got.dtype == np.int64 and got.tolist() == np.unique(values).tolist()


@settings(max_examples=300, deadline=None)
@given(ids, st.data())
def test_position_lookup_is_a_binary_search_of_the_keys(values, data):
    keys = np.unique(np.array(values, np.int64))
    wanted = np.array(data.draw(st.lists(st.sampled_from(keys.tolist()), max_size=40)) if len(keys) else [], np.int64)
    assert position_lookup(keys)(wanted).tolist() == np.searchsorted(keys, wanted).tolist()
