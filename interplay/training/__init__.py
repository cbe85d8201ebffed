"""Training: imitation (SFT), multi-turn GRPO and exploration shapers, thin layers over TRL."""
