"""One thin module per DVC stage: read what the stage needs, call the library, write what it produces."""
