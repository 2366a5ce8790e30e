"""Eco² functions: one package per function (functions.<name>), plus shared domain code in functions.common."""
