"""eco2: a serverless function framework for Knative (functions-framework + Flask + cloudevents 1.x).

Declare a function with `Function`, its routes and CloudEvent handlers with decorators; the
runtime serves it as one functions-framework target. See the README for the tour.
"""

from eco2.context import Context, Event, OutEvent
from eco2.function import Function

__all__ = ["Context", "Event", "Function", "OutEvent"]
