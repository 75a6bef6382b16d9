"""The datasets: what each is (catalog), how it is read (torchvision, a folder, data.class), what it becomes."""
