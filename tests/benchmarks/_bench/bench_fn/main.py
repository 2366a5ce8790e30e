from eco2.serving.entry import target

handle = target("bench_fn.app:fn")
