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


@given(words=st.lists(st.one_of(st.none(), st.text(max_size=4), st.sampled_from(["é", "e", "z", ""])), max_size=60),
       as_dictionary=st.booleans())
def test_byte_order_codes_order_like_the_bytes(words, as_dictionary):
    import pyarrow as pa
    from retail_pipeline.sorting import byte_order_codes
    present = [w for w in words if w is not None]
    column = pa.array(words, pa.string())
    if as_dictionary:  # every word its own dictionary entry, repeats included, as concatenated chunks can give
        indices, k = [], 0
        for w in words:
            indices.append(None if w is None else k)
            k += w is not None
        column = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(present, pa.string()))
    codes, distinct = byte_order_codes(column)
    assert distinct == len(set(present))
    for i, a in enumerate(words):
        for j, b in enumerate(words):
            if a is not None and b is not None:
                assert (a.encode() < b.encode()) == (codes[i] < codes[j])
                assert (a == b) == (codes[i] == codes[j])
