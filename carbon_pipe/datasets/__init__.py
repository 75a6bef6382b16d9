"""The datasets: what each one is (catalog), how it is read (torchvision, an image folder, a data.class function) and what they all become (prepared)."""
