"""The baseline: a bare functions-framework hello function (no eco2)."""

import functions_framework


@functions_framework.http
def hello(request):  # type: ignore[no-untyped-def]
    return "ok"
