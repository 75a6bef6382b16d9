"""The datasets: what each one is (catalog) and how its files are fetched (torchvision, a local mirror)."""
