"""functions-framework entrypoint (target `handle`)."""

from eco2.entry import target

handle = target("functions.chat.app:fn")
