"""scan: submit a photo, read its result, follow its progress (SSE), list the categories."""
