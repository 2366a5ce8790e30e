from eco2.entry import target

handle = target("sink_fn.app:fn")
