"""`make bench`: taskq's throughput, latency, AWS calls and cost per job, measured on the
embedded emulator against a minimal client and an alternative, all in one run.

Not a test: nothing here asserts a timing. See README's "Benchmarks" for what each figure is.
"""
