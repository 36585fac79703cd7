"""Models: the interleaved-model contract (interface.py), Flamingo, the HF-native families, presets."""
