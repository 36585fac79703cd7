"""symdpo."""
