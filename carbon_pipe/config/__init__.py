"""The params.yaml schema: its shared building blocks, each section, and loading and checking the file."""
