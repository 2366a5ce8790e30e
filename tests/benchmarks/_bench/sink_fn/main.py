from eco2.serving.entry import target

handle = target("sink_fn.app:fn")
