"""Media helpers: pure functions on files and decoded media, no Ray."""
