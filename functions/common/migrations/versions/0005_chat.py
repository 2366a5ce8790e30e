"""conversations and messages (chat functions)

Revision ID: 0005_chat
Revises: 0004_info
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0005_chat"
down_revision = "0004_info"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved in the chain; filled in by the function that owns these tables


def downgrade() -> None:
    pass
