import numpy as np

from privfin.runtime.executor import LocalProcessExecutor, SerialExecutor, get_executor


def _square_sum(chunk, offset):
    return int((np.asarray(chunk) ** 2).sum()) + offset


def test_map_chunks_same_result_serial_and_pool():
    data = np.arange(10_001)
    want = int((data**2).sum())
    pool = LocalProcessExecutor(2)
    try:
        parts = pool.map_chunks(_square_sum, data, 0)
        assert sum(parts) == want and len(parts) >= 2
        assert pool.map(_square_sum, [[1, 2], [3]], [10, 20]) == [15, 29]
    finally:
        pool.shutdown()
    assert sum(SerialExecutor().map_chunks(_square_sum, data, 0)) == want
    assert SerialExecutor().map_chunks(_square_sum, [], 0) == []


def test_default_executor_uses_every_core():
    import os

    ex = get_executor()
    assert ex.n_workers in (1, os.cpu_count())
