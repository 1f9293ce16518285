"""Checking tools the tests and benchmarks use: word error rate (wer), encoder accuracy per
speech frame (accuracy), host builds of the kernels' portable C++ paths (host_kernels), and the
functional DMA simulator of a column (dma_sim, dma_sim_kernels). Not part of the product."""
