import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from retail_pipeline.sorting import dense_codes, radix_argsort

keys = st.lists(st.one_of(st.integers(0, 5), st.integers(0, 2**63 - 1)), max_size=200)


@given(keys=keys)
def test_radix_argsort_is_a_stable_sort(keys):
    values = np.array(keys, dtype=np.int64)
    assert radix_argsort(values).tolist() == np.argsort(values, kind="stable").tolist()


@given(keys=keys, first=st.lists(st.integers(0, 3), max_size=200))
def test_radix_argsort_keeps_a_previous_order_within_ties(keys, first):
    n = min(len(keys), len(first))
    values, earlier = np.array(keys[:n], dtype=np.int64), np.array(first[:n], dtype=np.int64)
    by_first = np.argsort(earlier, kind="stable")
    expected = sorted(range(n), key=lambda i: (values[i], earlier[i], i))
    assert radix_argsort(values, by_first).tolist() == expected


@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=100))
def test_dense_codes_order_like_the_values(values):
    codes = dense_codes(np.array(values, dtype=np.int64))
    assert (codes >= 0).all()
    for i in range(len(values)):
        for j in range(len(values)):
            assert (values[i] < values[j]) == (codes[i] < codes[j])
