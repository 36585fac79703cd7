"""Models: the interleaved-model protocol, Flamingo, presets."""
