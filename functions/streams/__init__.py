"""streams: the scan and chat job event streams (SSE), many per process (see service.py)."""
