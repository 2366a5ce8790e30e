"""news articles (info function)

Revision ID: 0004_info
Revises: 0003_locations
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0004_info"
down_revision = "0003_locations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved in the chain; filled in by the function that owns these tables


def downgrade() -> None:
    pass
