"""Where `fervideo.analyze_many` runs its videos besides this process: `ray` (a Ray cluster).

Each engine takes the expanded inputs, the output folder, the settings and the callbacks of
`analyze_many`, and returns one `VideoResult` per input in input order; every engine writes
through the same `fervideo.store`, so their tables are interchangeable.
"""
