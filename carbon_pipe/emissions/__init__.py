"""What a run emitted: energy measured per interval (CodeCarbon) and the pure carbon accounting."""
