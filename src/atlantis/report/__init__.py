"""Reports on a run: what it cost, what it found, what it gained."""
