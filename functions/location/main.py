"""functions-framework entrypoint (target `handle`)."""

from eco2.serving.entry import target

handle = target("functions.location.app:fn")
