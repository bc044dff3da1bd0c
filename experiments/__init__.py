"""The `trainplan` command line, comparisons, sweeps, plots and benchmarks."""
