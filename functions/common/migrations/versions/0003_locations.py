"""collection points (location function)

Revision ID: 0003_locations
Revises: 0002_events
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0003_locations"
down_revision = "0002_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved in the chain; filled in by the function that owns these tables


def downgrade() -> None:
    pass
