"""news articles (info function)

Revision ID: 0004_info
Revises: 0003_locations
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_info"
down_revision = "0003_locations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the shape of functions/info/store.py's news_articles; `seq` orders ties of published_at
    op.create_table(
        "news_articles",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("url_key", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("thumbnail_url", sa.String(2048)),
        sa.Column("source_icon_url", sa.String(2048)),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("id", name="uq_news_articles_id"),
        sa.UniqueConstraint("url_key", name="uq_news_articles_url_key"),
    )
    op.create_index("ix_news_articles_order", "news_articles", ["published_at", "seq"])
    op.create_index("ix_news_articles_category_order", "news_articles", ["category", "published_at", "seq"])


def downgrade() -> None:
    op.drop_index("ix_news_articles_category_order", table_name="news_articles")
    op.drop_index("ix_news_articles_order", table_name="news_articles")
    op.drop_table("news_articles")
