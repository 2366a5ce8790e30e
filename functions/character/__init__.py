"""character: the character catalogue, and granting characters earned by scans."""
