import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads, for every benchmark)
