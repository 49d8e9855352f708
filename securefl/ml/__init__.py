"""Machine learning: data sets and partitions, model adapters."""
