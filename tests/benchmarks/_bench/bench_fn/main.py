from eco2.entry import target

handle = target("bench_fn.app:fn")
