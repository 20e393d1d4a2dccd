"""astra: train tool-using LLM agents end to end (trajectory synthesis, environment
synthesis, SFT and online multi-turn RL)."""

__version__ = "0.1.0"
