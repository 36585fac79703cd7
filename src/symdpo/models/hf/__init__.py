"""HF-native interleaved LMMs (IDEFICS v1, Idefics3/SmolVLM, Qwen2-VL/Qwen2.5-VL) behind the model interface."""
