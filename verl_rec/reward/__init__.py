"""Parse and check model outputs, and turn a ranking metric into the Rec-R1 reward. No I/O."""
