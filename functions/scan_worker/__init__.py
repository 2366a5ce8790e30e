"""scan-worker: classify a photo, look up the rules, write the answer, decide the reward."""
