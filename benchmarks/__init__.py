"""The benchmark harness: ``python -m benchmarks`` (or ``make bench``).

Every figure is the median of several runs and is reported with a baseline
measured in the same run, as a ratio: these machines are noisy, so absolute
numbers from different runs are not comparable, ratios are.
"""
