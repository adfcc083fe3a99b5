"""`make bench`: speed against the physical limit and the other tools' methods (issue 6)."""
