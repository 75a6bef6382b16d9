"""What the compare stage tells: the numbers, the markdown report, its charts and the plot data."""
