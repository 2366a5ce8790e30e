"""info: recycling news collected on a schedule, and recycling information (categories, items, FAQ)."""
